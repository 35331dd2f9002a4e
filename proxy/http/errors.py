"""OpenAI-shaped error replies at the HTTP edge: the handlers, and the mapping of every
failure to ``{"error": {"message", "type", "code", "param"}}`` with the right status.

- 400 ``invalid_request_error``: bad JSON; a body that does not match the schema
  (``validation_error``), a bad policy spec or ``thinkstop`` override
  (``invalid_thinkstop``), each naming the field in ``param`` (OpenAI answers bad
  parameters with 400, and its SDK raises ``BadRequestError`` for them); features an
  upstream cannot serve; the upstream rejecting the request as malformed (passed on).
- 401 ``authentication_error``: missing or unknown key when keys are configured.
- 404 ``not_found_error``: unknown model, stored response or route.
- 413 ``invalid_request_error``: body over ``general_settings.max_request_bytes``.
- 429 ``rate_limit_error``: a token budget window is spent (``Retry-After`` set), or the
  upstream rate-limited us (passed on).
- 502 ``upstream_error``: the upstream failed, refused the connection, or rejected
  thinkstop's own credentials; code ``upstream_oversized``: it sent one SSE line (or
  chunk) past the size limit; 504 ``upstream_timeout``: it did not answer in time.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkstop.proxy.config import REQUEST_FIELDS
from thinkstop.proxy.errors import ProxyError, error_body
from thinkstop.proxy.upstreams.base import UpstreamError

# Upstream statuses that are the caller's fault (the request itself): passed on as they are.
CALLER_FAULT = frozenset({400, 413, 422})


def upstream_failure(exc: UpstreamError, message: str | None = None) -> ProxyError:
    """The client-facing error for an upstream failure before any byte was sent.

    The upstream's 400/413/422 (the request itself was bad, e.g. too long a context) and
    429 (rate limited) pass on with their status; its 401/403 mean thinkstop's own
    upstream credentials are wrong, which is no fault of the caller: 502, as for every
    other failure; no reply in time: 504. ``message`` replaces the (redacted) text.
    """
    text = message or exc.message
    status = exc.status_code
    if exc.kind == "timeout" or status in (408, 504):
        return ProxyError(504, text, type_="upstream_error", code="upstream_timeout")
    if exc.kind == "connect":
        return ProxyError(502, text, type_="upstream_error", code="upstream_unreachable")
    if exc.kind == "oversized":
        return ProxyError(502, text, type_="upstream_error", code="upstream_oversized")
    if status in CALLER_FAULT:
        return ProxyError(status, text, code="upstream_rejected_request")
    if status == 429:
        headers = None if exc.retry_after is None else {
            "Retry-After": str(max(1, round(exc.retry_after)))}
        return ProxyError(429, text, type_="rate_limit_error", code="upstream_rate_limited",
                          headers=headers)
    if status in (401, 403):
        return ProxyError(502, text, type_="upstream_error", code="upstream_auth_failed")
    return ProxyError(502, text, type_="upstream_error", code="upstream_error")


def _extra_field_hint(error: Any, loc: list[str]) -> str:
    """For an unknown field, the fields that are valid there."""
    if error.get("type") != "extra_forbidden" or not loc or loc[0] != "thinkstop":
        return ""
    return f" (valid thinkstop fields: {', '.join(REQUEST_FIELDS)})"


# Which member of a union pydantic tried ("str", "list[dict[str,any]]"): not a field.
_UNION_MEMBER = re.compile(r"^(?:str|int|float|bool|dict|list|none|[a-z_-]+\[.*\])$")


def _location(error: Any) -> list[str]:
    return [str(p) for p in error.get("loc", ())
            if p != "body" and not (isinstance(p, str) and _UNION_MEMBER.match(p))]


def _validation_message(exc: RequestValidationError) -> tuple[bool, str, str | None]:
    """(is_bad_json, message, param)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return True, "request body is not valid JSON", None
    parts: list[str] = []
    param = None
    for e in errors:
        loc = _location(e)
        param = param or (".".join(loc) or None)
        part = f"{'.'.join(loc) or 'body'}: {e.get('msg')}{_extra_field_hint(e, loc)}"
        if part not in parts:
            parts.append(part)
    return False, "; ".join(parts) or "invalid request", param


def request_id_of(request: Request) -> str | None:
    """The id the request-id middleware gave this request (see :mod:`.request_id`)."""
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can raise OpenAI-shaped."""

    async def proxy_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProxyError)
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers or None)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        bad_json, message, param = _validation_message(exc)
        if bad_json:
            return JSONResponse(error_body(message, "invalid_request_error", "invalid_json"),
                                status_code=400)
        # The per-request thinkstop options have their own code, as documented.
        code = "invalid_thinkstop" if (param or "").startswith("thinkstop") else (
            "validation_error")
        return JSONResponse(error_body(message, "invalid_request_error", code, param),
                            status_code=400)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:  # no such route: OpenAI's wording
            body = error_body(f"Invalid URL ({where})", "not_found_error", "unknown_url")
        elif exc.status_code == 405:
            body = error_body(f"Method not allowed ({where})", "invalid_request_error",
                              "method_not_allowed")
        elif exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # Starlette's own parse failure (e.g. JSON nested past the decoder's limit):
            # the documented code, as for any other body that is not JSON.
            body = error_body("request body is not valid JSON (it could not be parsed)",
                              "invalid_request_error", "invalid_json")
        else:
            body = error_body(str(exc.detail), "invalid_request_error",
                              str(exc.status_code))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not a client or upstream fault: say so in the usual shape, nothing more
        # (the exception itself goes to the server log, never to the client). This reply
        # is sent outside the middleware, so it sets the request id itself.
        request_id = request_id_of(request)
        return JSONResponse(error_body("internal error in thinkstop", "server_error",
                                       "internal_error"), status_code=500,
                            headers={"x-request-id": request_id} if request_id else None)

    app.add_exception_handler(ProxyError, proxy_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
