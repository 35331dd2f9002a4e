"""OpenAI-shaped errors: ``{"error": {"message", "type", "code"}}`` with the right status.

- 400 ``invalid_request_error``: bad JSON, bad values (policy spec, guard-rails).
- 422 ``invalid_request_error``: a body that does not match the schema.
- 401 ``authentication_error``: missing or wrong key when a master key is set.
- 404 ``not_found_error``: unknown model or route.
- 502 ``upstream_error``: the model upstream failed.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ProxyError(Exception):
    """An error the proxy answers with; ``code`` is a short machine-readable string."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type_: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def upstream_failure(message: str) -> ProxyError:
    return ProxyError(502, message, type_="upstream_error", code="upstream_error")


def _validation_message(exc: RequestValidationError) -> tuple[bool, str, str | None]:
    """(is_bad_json, message, param)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return True, "request body is not valid JSON", None
    parts = []
    param = None
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        param = param or (".".join(loc) or None)
        parts.append(f"{'.'.join(loc) or 'body'}: {e.get('msg')}")
    return False, "; ".join(parts) or "invalid request", param


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can raise OpenAI-shaped."""

    async def proxy_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProxyError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        bad_json, message, param = _validation_message(exc)
        if bad_json:
            return JSONResponse(error_body(message, "invalid_request_error", "invalid_json"),
                                status_code=400)
        return JSONResponse(
            error_body(message, "invalid_request_error", "validation_error", param),
            status_code=422,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), type_, str(exc.status_code)),
                            status_code=exc.status_code)

    app.add_exception_handler(ProxyError, proxy_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
