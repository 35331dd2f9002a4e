"""A request-body size limit (413) and read deadline (408), enforced before the app
reads a byte of JSON.

Pure ASGI: a declared ``Content-Length`` over the limit is refused at once; a chunked body
is read up to the limit and refused as soon as it passes it. The whole body must arrive
within ``timeout`` seconds of the first read (about when its headers did): a client that
trickles its body, or declares one and stalls, gets a 408 ``request_timeout`` and its
connection is closed, instead of holding the connection and what it sent so far. A body
within the limits is handed on unchanged, followed by the client's later messages
(``http.disconnect``), so disconnect detection downstream still works.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.http.early_reply import header, send_error


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413) or slower than ``timeout`` seconds
    (408), OpenAI-shaped."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_error(send, self._too_large(), close=True)
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read(receive)
        except TimeoutError:
            await send_error(send, ProxyError(
                408, f"the request body did not arrive within {self.timeout:g} s",
                code="request_timeout"), close=True)
            return
        except _TooLarge:
            await send_error(send, self._too_large(), close=True)
            return
        if body is None:
            return  # the client left before sending its body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> ProxyError:
        return ProxyError(413, f"request body is larger than the limit of {self.max_bytes} "
                          "bytes", code="request_too_large")


class _TooLarge(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
