"""SSE framing, keep-alive comments, and a streaming response that always closes its
source.

``data: {json}\\n\\n`` per event (``event: NAME`` first for the Responses API's named
events), ``data: [DONE]\\n\\n`` exactly once at the end of a chat or completions stream
(also after an in-band error). :class:`SSEResponse` watches for the client going away
while it streams and, whatever happens, closes the body generator, whose ``finally``
closes the upstream stream and cancels the probes, then runs its ``cleanup`` (for a
generator that never started, whose ``finally`` would not run).

Keep-alive: while nothing is sent for ``keepalive`` seconds (hidden reasoning, a long
wait for the first token, a slow continuation), an SSE comment (``: keep-alive``) goes
out, so that load balancers and proxies with idle timeouts do not cut a long think.
Clients ignore comments (the SSE spec; the openai SDK's decoder skips them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE: Final = b"data: [DONE]\n\n"
KEEPALIVE: Final = b": keep-alive\n\n"


def frame(payload: dict[str, Any]) -> bytes:
    """One SSE event carrying ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def named_frame(event: str, payload: dict[str, Any]) -> bytes:
    """One named SSE event (``event: NAME``), as the Responses API streams them."""
    return b"event: " + event.encode() + b"\n" + frame(payload)


class _Stop:
    pass


_STOP = _Stop()


async def with_keepalive(source: AsyncGenerator[bytes, None], interval: float
                         ) -> AsyncGenerator[bytes, None]:
    """``source``'s items, with :data:`KEEPALIVE` whenever it is silent for ``interval``
    seconds.

    A pump task reads ``source`` into a one-item queue, so waiting with a timeout never
    cancels ``source`` itself mid-step, and the client's pace still holds the source back.
    Closing this generator cancels the pump, which closes ``source``.
    """
    queue: asyncio.Queue[bytes | BaseException | _Stop] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(exc)
            return
        finally:
            await source.aclose()
        await queue.put(_STOP)

    task = asyncio.ensure_future(pump())
    try:
        while True:
            try:
                async with asyncio.timeout(interval):
                    item = await queue.get()
            except TimeoutError:
                yield KEEPALIVE
                continue
            if isinstance(item, _Stop):
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        await asyncio.wait([task])


class SSEResponse(StreamingResponse):
    """``text/event-stream`` that stops and closes its generator on client disconnect."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None], *,
                 cleanup: Callable[[], Awaitable[None]] | None = None,
                 keepalive: float = 0.0) -> None:
        body = with_keepalive(content, keepalive) if keepalive > 0 else content
        super().__init__(body, headers={"Cache-Control": "no-cache",
                                        "X-Accel-Buffering": "no"})
        self._body = body
        self._source = content
        # Closing a generator that never started skips its ``finally``; ``cleanup`` runs
        # whatever happened (a client that leaves before the first chunk included).
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        watching = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                if not task.done():
                    task.cancel()
            await asyncio.wait({streaming, watching})
            # Runs the generators' finally now, not whenever they are garbage collected.
            try:
                await self._body.aclose()
                await self._source.aclose()
            finally:
                if self._cleanup is not None:
                    await self._cleanup()
        if streaming.done() and not streaming.cancelled():
            error = streaming.exception()
            if error is not None and not isinstance(error, OSError):
                raise error
