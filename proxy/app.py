"""The FastAPI app, built by a factory: no globals, no import-time side effects.

``create_app(config, upstreams)`` takes a validated :class:`~proxy.config.ProxyConfig` and
one upstream per ``model_name``; the app closes the upstreams when it shuts down.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TextIO

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from proxy.chat import ChatService, ModelRoute
from proxy.config import ConfigError, ProxyConfig
from proxy.errors import ProxyError, install_error_handlers
from proxy.metrics import ProxyMetrics
from proxy.protocol import ChatCompletionRequest
from proxy.request_log import make_logger
from proxy.upstreams.base import Upstream
from proxy.upstreams.providers import choose_continuation


def build_routes(config: ProxyConfig, upstreams: Mapping[str, Upstream]) -> dict[str, ModelRoute]:
    """Pair every model entry with its upstream and continuation; ConfigError if unusable."""
    routes: dict[str, ModelRoute] = {}
    for i, entry in enumerate(config.model_list):
        upstream = upstreams.get(entry.model_name)
        if upstream is None:
            raise ConfigError(f"model_list[{i}]: no upstream built for {entry.model_name!r}")
        requested = config.options_for(entry).continuation or "auto"
        offered = upstream.capabilities.continuations
        if requested != "auto" and requested not in offered:
            raise ConfigError(
                f"model_list[{i}].thinkstop.continuation: {requested!r} is not supported by "
                f"this upstream (it offers: {', '.join(offered) or 'none'})"
            )
        routes[entry.model_name] = ModelRoute(
            name=entry.model_name,
            upstream_model=str(entry.litellm_params["model"]),
            upstream=upstream,
            continuation=choose_continuation(upstream.capabilities, requested),
        )
    return routes


def _auth(master_key: str | None) -> Any:
    async def check(request: Request) -> None:
        if master_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ProxyError(401, "missing API key: send 'Authorization: Bearer <key>'",
                             type_="authentication_error", code="missing_api_key")
        if not hmac.compare_digest(token.strip().encode(), master_key.encode()):
            raise ProxyError(401, "invalid API key", type_="authentication_error",
                             code="invalid_api_key")

    return check


def create_app(settings: ProxyConfig, upstreams: Mapping[str, Upstream], *,
               log_stream: TextIO | None = None) -> FastAPI:
    """The thinkstop proxy app for ``settings``, serving ``upstreams`` by model name."""
    routes = build_routes(settings, upstreams)
    metrics = ProxyMetrics()
    log = make_logger(settings.general_settings.log_level, log_stream)
    service = ChatService(settings, routes, metrics, log)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for upstream in upstreams.values():
            await upstream.aclose()

    app = FastAPI(
        title="thinkstop",
        description="OpenAI-compatible proxy that halts a reasoning model's thinking once "
        "its answer plateaus.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.state.metrics = metrics
    app.state.service = service
    auth = Depends(_auth(settings.general_settings.master_key))

    @app.post("/v1/chat/completions", dependencies=[auth], tags=["openai"],
              response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> Response:
        """Chat completion, streamed (SSE) or whole, with a top-level `thinkstop` decision."""
        return await service.complete(body)

    @app.post("/chat/completions", dependencies=[auth], include_in_schema=False,
              response_model=None)
    async def chat_completions_alias(body: ChatCompletionRequest) -> Response:
        return await service.complete(body)

    @app.get("/v1/models", dependencies=[auth], tags=["openai"])
    async def models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "created": created, "owned_by": "thinkstop"}
                for name in routes]
        return {"object": "list", "data": data}

    @app.get("/health/liveliness", tags=["health"])
    async def liveliness() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/readiness", tags=["health"], response_model=None)
    async def readiness() -> Response:
        waiting = []
        for name, route in routes.items():
            ready = getattr(route.upstream, "ready", None)  # optional hook
            if callable(ready) and not await ready():
                waiting.append(name)
        status = 503 if waiting else 200
        return JSONResponse({"status": "waiting" if waiting else "ready",
                             "models": list(routes), "waiting": waiting}, status_code=status)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
