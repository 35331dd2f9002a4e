"""OpenAI-shaped error replies sent by the pure ASGI middleware, before (or instead of)
the app: a body too large or too slow, a missing key, a server shutting down.

``close``: ask the server to close the connection after the reply (``Connection:
close``). A refusal sent before the request's body was read must close it, or the
server would go on receiving a body nobody reads, on a connection the client may keep
trickling.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Scope, Send

from thinkstop.proxy.errors import ProxyError


async def send_error(send: Send, error: ProxyError, *, close: bool = False) -> None:
    """Send ``error`` as a whole JSON reply."""
    data = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(data)).encode())]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers.extend((k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items())
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header's value (``name`` in lower case), or None."""
    raw: list[Any] = scope.get("headers") or []
    for key, value in raw:
        if key.lower() == name:
            return bytes(value)
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request declares a body (a non-zero length, or chunked)."""
    if header(scope, b"transfer-encoding") is not None:
        return True
    length = header(scope, b"content-length")
    return length is not None and length.strip() not in (b"", b"0")
