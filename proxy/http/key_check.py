"""The API key, checked from the headers before any of the body is read.

Pure ASGI, outside the body limit: a FastAPI dependency runs only after the body has been
received and parsed, so an unauthenticated client could make the proxy hold megabytes per
connection (100 stalled 3.9 MB bodies took the RSS from 217 to 602 MB). Here a request to
a guarded path without a known key gets its 401 at once, with ``Connection: close`` when
it declared a body, which is never read. The caller found is left in the request's state
(``request.state.caller``) for the routes.

A refused key is an operator's signal (a misconfigured client, or probing): it is logged
and counted by ``on_refused``, with the code only, never any part of the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.keys import KeyRing, check_key
from thinkstop.proxy.http.early_reply import has_body, header, send_error

# The OpenAI surface (and its unversioned chat alias); health, metrics and docs stay open.
GUARDED: Final = ("/v1/", "/chat/completions")
CALLER: Final = "caller"  # the request state's key for the Caller

Refused = Callable[[Scope, ProxyError], None]


def guarded(path: str) -> bool:
    """Whether ``path`` needs a key (when keys are configured)."""
    return path.startswith(GUARDED[0]) or path == GUARDED[1]


class KeyCheck:
    """401 before the body for guarded paths without a known key."""

    def __init__(self, app: ASGIApp, keys: KeyRing, on_refused: Refused) -> None:
        self.app = app
        self.keys = keys
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.required or not guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        value = header(scope, b"authorization")
        try:
            caller = check_key(self.keys, value.decode("latin-1") if value else None)
        except ProxyError as exc:
            self.on_refused(scope, exc)
            await send_error(send, exc, close=has_body(scope))
            return
        scope.setdefault("state", {})[CALLER] = caller
        await self.app(scope, receive, send)
