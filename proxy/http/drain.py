"""The end of SIGTERM's grace period: every reply still running is ended cleanly.

On SIGTERM the server stops accepting connections and lets in-flight requests finish for
``general_settings.graceful_shutdown_seconds``; past that, uvicorn cancels what is left,
which cut each endless stream with a bare protocol error (no final frame) and logged a
traceback per request. Instead, :class:`~thinkstop.proxy.http.server.ProxyServer` calls
:meth:`Drain.expire` at the end of the grace period, and :class:`EndAtShutdown` (pure
ASGI, around the app) cancels each request still running (its own cleanup closes the
upstream stream and the probes) and ends its reply itself:

- a stream (``text/event-stream``) gets a final in-band error, code
  ``server_shutting_down``, in the shape of its API: ``data: {"error": {...}}`` then
  ``data: [DONE]`` for chat and completions, an ``error`` event for the Responses API;
- a request whose reply has not started gets a 503 ``server_shutting_down``.

A reply that is already complete is left to finish its own cleanup (budget settlement,
the log line). uvicorn's own deadline is set a little later (``server.DRAIN_MARGIN``), so
it never has to cancel anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thinkstop.proxy.errors import ProxyError, error_body
from thinkstop.proxy.http.early_reply import send_error
from thinkstop.proxy.http.sse import DONE, frame, named_frame

CODE: Final = "server_shutting_down"
MESSAGE: Final = ("thinkstop is shutting down: this reply was cut at the end of the shutdown "
                  "grace period; send the request again")


class _Reply:
    """What one request has sent so far, to end its reply the right way."""

    __slots__ = ("cut", "ended", "events", "named", "send", "started", "stream")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.ended = False
        self.stream = False
        self.named: bool | None = None  # named SSE events (Responses API)
        self.events = 0  # frames sent (a Responses event's sequence number)
        self.cut = False

    async def relay(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            for key, value in message.get("headers") or ():
                if key.lower() == b"content-type":
                    self.stream = bytes(value).startswith(b"text/event-stream")
        elif kind == "http.response.body":
            body: bytes = message.get("body", b"")
            if self.stream and body and not body.startswith(b":"):  # not a keep-alive
                if self.named is None:
                    self.named = body.startswith(b"event:")
                self.events += 1
            if not message.get("more_body", False):
                self.ended = True
        await self.send(message)

    async def finish(self) -> None:
        """End the reply after the request was cancelled."""
        error = ProxyError(503, MESSAGE, type_="server_error", code=CODE)
        if not self.started:
            await send_error(self.send, error, close=True)
            return
        if self.ended:
            return
        tail = b""
        if self.stream and self.named:
            tail = named_frame("error", {"type": "error", "sequence_number": self.events,
                                         "code": CODE, "message": MESSAGE, "param": None})
        elif self.stream:
            tail = frame(error_body(MESSAGE, "server_error", CODE)) + DONE
        await self.send({"type": "http.response.body", "body": tail, "more_body": False})


class Drain:
    """Shared by the server (which calls :meth:`expire`) and :class:`EndAtShutdown`."""

    def __init__(self) -> None:
        self.expired = False
        self._running: dict[asyncio.Task[Any], _Reply] = {}

    def expire(self) -> None:
        """The grace period is over: cut every reply still running."""
        self.expired = True
        for task, reply in list(self._running.items()):
            if not reply.ended and not reply.cut:
                reply.cut = True
                task.cancel()

    def track(self, task: asyncio.Task[Any], reply: _Reply) -> None:
        self._running[task] = reply

    def untrack(self, task: asyncio.Task[Any]) -> None:
        del self._running[task]

    @property
    def running(self) -> int:
        """Requests in progress."""
        return len(self._running)


class EndAtShutdown:
    """Pure ASGI: register each request with the drain; end its reply if it is cut."""

    def __init__(self, app: ASGIApp, drain: Drain,
                 on_cut: Callable[[Scope], None] | None = None) -> None:
        self.app = app
        self.drain = drain
        self.on_cut = on_cut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        reply = _Reply(send)
        self.drain.track(task, reply)
        try:
            await self.app(scope, receive, reply.relay)
        except asyncio.CancelledError:
            # Ours only when the drain cut this request and nobody else (uvicorn's own
            # deadline) cancelled it too: the asyncio.timeout rule.
            if not reply.cut or task.uncancel() > 0:
                raise
            if self.on_cut is not None:
                self.on_cut(scope)
            await reply.finish()
        finally:
            self.drain.untrack(task)
