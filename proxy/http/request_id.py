"""An ``x-request-id`` header on every reply, as OpenAI's API sends one.

Pure ASGI, outside every other middleware of ours, so that every reply carries it (413s
from the body limit, CORS preflights, errors); the same id is the ``request_id`` of the
request's log line, so a client's report can be found in the logs. Replies to a crash are
sent by Starlette's outermost error middleware, around this one: their handler reads the
id from ``request.state`` (:func:`thinkstop.proxy.http.errors.request_id_of`).
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class RequestId:
    """Give each HTTP request an id (``request.state.request_id``) and send it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        # The same dict the outer error middleware will read, so its 500 carries it too.
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
