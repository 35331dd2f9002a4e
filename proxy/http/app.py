"""The FastAPI app, built by a factory: no globals, no import-time side effects.

``create_app(config, upstreams)`` takes a validated :class:`~thinkstop.proxy.config.ProxyConfig` and
one upstream per ``model_name``; the app closes the upstreams when it shuts down.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TextIO

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from thinkstop.proxy.config import ConfigError, ProxyConfig
from thinkstop.proxy.guard.budgets import CounterStore
from thinkstop.proxy.guard.keys import Caller, KeyRing, authenticate
from thinkstop.proxy.guard.scopes import Budgets, make_store
from thinkstop.proxy.http.body_limit import BodyLimit
from thinkstop.proxy.http.chat import ChatService, ModelRoute
from thinkstop.proxy.http.errors import install_error_handlers
from thinkstop.proxy.http.protocol import ChatCompletionRequest
from thinkstop.proxy.observe.metrics import ProxyMetrics
from thinkstop.proxy.observe.redaction import Redactor, config_secrets
from thinkstop.proxy.observe.request_log import make_logger
from thinkstop.proxy.upstreams.base import Upstream
from thinkstop.proxy.upstreams.providers import choose_continuation


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


def create_app(settings: ProxyConfig, upstreams: Mapping[str, Upstream], *,
               log_stream: TextIO | None = None,
               budget_store: CounterStore | None = None) -> FastAPI:
    """The thinkstop proxy app for ``settings``, serving ``upstreams`` by model name.

    ``budget_store`` replaces the store chosen from ``general_settings.redis_url``.
    """
    routes = build_routes(settings, upstreams)
    general = settings.general_settings
    metrics = ProxyMetrics()
    redact = Redactor(config_secrets(settings))
    log = make_logger(general.log_level, log_stream, redact)
    budgets = Budgets(budget_store or make_store(general.redis_url), metrics, log)
    service = ChatService(settings, routes, metrics, log, budgets=budgets, redact=redact)
    keys = KeyRing(general)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for upstream in upstreams.values():
            await upstream.aclose()
        await budgets.aclose()

    app = FastAPI(
        title="thinkstop",
        description="OpenAI-compatible proxy that halts a reasoning model's thinking once "
        "its answer plateaus.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=general.max_request_bytes)
    app.state.metrics = metrics
    app.state.service = service
    authenticate_caller = authenticate(keys)
    auth = Depends(authenticate_caller)

    @app.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request,
                               caller: Caller = auth) -> Response:
        """Chat completion, streamed (SSE) or whole, with a top-level `thinkstop` decision."""
        return await service.complete(body, caller, request.receive)

    @app.post("/chat/completions", include_in_schema=False, response_model=None)
    async def chat_completions_alias(body: ChatCompletionRequest, request: Request,
                                     caller: Caller = auth) -> Response:
        return await service.complete(body, caller, request.receive)

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
