"""The error a client gets: a status and an OpenAI-shaped body.

Raised by the HTTP edge and by the guard-rails under it (keys, budgets), answered by the
handlers in :mod:`thinkstop.proxy.http.errors`. Below the HTTP layer so that the layers
under it can refuse a request without knowing about HTTP serving.
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    """An error the proxy answers with; ``code`` is a short machine-readable string."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type_: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


ECHO_LIMIT = 64  # characters of a client's value an error message repeats


def echo(value: object) -> str:
    """``repr(value)`` for an error message, cut to :data:`ECHO_LIMIT` characters: an error
    names what was wrong without reflecting a megabyte back to the client or the log."""
    text = repr(value)
    if len(text) <= ECHO_LIMIT:
        return text
    return f"{text[:ECHO_LIMIT]}... ({len(text)} characters)"
