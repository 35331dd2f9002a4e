"""The FastAPI app, built by a factory: no globals, no import-time side effects.

``create_app(config, upstreams)`` takes a validated :class:`~thinkstop.proxy.config.ProxyConfig` and
one upstream per ``model_name``; the app closes the upstreams when it shuts down.

Endpoints: ``POST /v1/chat/completions`` (also ``/chat/completions``), ``POST
/v1/responses``, ``GET /v1/responses/{id}``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/models/{id}``, health, ``/metrics``. Every reply carries ``x-request-id``; any
other route is an OpenAI-shaped 404 (under ``/v1``, a 401 first without a key). CORS is
off unless ``general_settings.cors_origins`` lists origins.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TextIO

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Scope

from thinkstop.proxy.anchors import DEFAULT_MAX, Anchors, AnchorsError, anchor_text, read_anchors
from thinkstop.proxy.config import ConfigError, ProxyConfig
from thinkstop.proxy.errors import ProxyError, echo
from thinkstop.proxy.guard.budgets import CounterStore
from thinkstop.proxy.guard.keys import Caller, KeyRing, bearer_token, check_key
from thinkstop.proxy.guard.scopes import Budgets, make_store
from thinkstop.proxy.http.body_limit import BodyLimit
from thinkstop.proxy.http.chat import ChatService
from thinkstop.proxy.http.completions import CompletionRequest, CompletionsService
from thinkstop.proxy.http.drain import Drain, EndAtShutdown
from thinkstop.proxy.http.errors import install_error_handlers, request_id_of
from thinkstop.proxy.http.exchange import Edge, ModelRoute
from thinkstop.proxy.http.key_check import CALLER, KeyCheck
from thinkstop.proxy.http.protocol import ChatCompletionRequest
from thinkstop.proxy.http.request_id import RequestId, new_request_id
from thinkstop.proxy.http.responses_api import ResponsesService
from thinkstop.proxy.http.responses_request import ResponsesRequest
from thinkstop.proxy.http.responses_store import ResponseStore
from thinkstop.proxy.observe.metrics import ProxyMetrics
from thinkstop.proxy.observe.redaction import Redactor, config_secrets
from thinkstop.proxy.observe.request_log import make_logger
from thinkstop.proxy.observe.traces import TraceSink, open_sink
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
        anchors = _anchors(config, i)
        routes[entry.model_name] = ModelRoute(
            name=entry.model_name,
            upstream_model=str(entry.litellm_params["model"]),
            upstream=upstream,
            continuation=choose_continuation(upstream.capabilities, requested),
            anchors=anchors,
            anchor_tokens=0 if anchors is None else upstream.count_tokens(anchor_text(anchors)),
        )
    return routes


def _anchors(config: ProxyConfig, index: int) -> Anchors | None:
    """The model's worked examples, read once at start (a bad file stops serve here)."""
    options = config.options_for(config.model_list[index])
    if not isinstance(options.anchors, str):
        return None
    try:
        return read_anchors(options.anchors).first(options.anchors_max or DEFAULT_MAX)
    except AnchorsError as exc:
        raise ConfigError(f"model_list[{index}].thinkstop.anchors: {exc}") from None


def open_traces(config: ProxyConfig) -> TraceSink | None:
    """Where shadow-mode traces go: ``trace_sink`` (a Redis stream), else ``trace_dir``."""
    settings = config.thinkstop_settings
    target = settings.trace_sink or settings.trace_dir
    if target is None:
        return None
    try:
        return open_sink(target, max_bytes=int(settings.trace_max_mb * 1024 * 1024),
                         max_seconds=settings.trace_max_seconds)
    except (OSError, ValueError) as exc:
        name = "trace_sink" if settings.trace_sink else "trace_dir"
        raise ConfigError(f"thinkstop_settings.{name}: cannot write traces to {target}: "
                          f"{exc}") from None


def _request_id(request: Request) -> str:
    return request_id_of(request) or new_request_id()


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
    traces = open_traces(settings)
    if traces is not None:
        sink = traces
        metrics.traces_dropped.set_function(lambda: float(sink.dropped))
    edge = Edge(settings, routes, metrics, log, budgets=budgets, redact=redact, traces=traces)
    chat = ChatService(edge)
    responses = ResponsesService(edge, ResponseStore(general.responses_store_size))
    completions = CompletionsService(edge)
    keys = KeyRing(general)
    drain = Drain()
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for upstream in upstreams.values():
            await upstream.aclose()
        await budgets.aclose()
        if traces is not None:
            await traces.aclose()
            if traces.dropped:
                log.warning("shadow_traces_dropped", lines=traces.dropped)

    app = FastAPI(
        title="thinkstop",
        description="OpenAI-compatible proxy that halts a reasoning model's thinking once "
        "its answer plateaus.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    def refused(scope: Scope, exc: ProxyError) -> None:
        # A refused key is an operator's signal (a misconfigured client, or probing):
        # logged and counted, with the code only, never any part of the key.
        metrics.auth_failures.labels(exc.code or "unauthorized").inc()
        client = scope.get("client")
        log.warning("auth_failed", code=exc.code, path=scope["path"],
                    client=client[0] if client else None,
                    request_id=scope.get("state", {}).get("request_id"))

    def cut(scope: Scope) -> None:
        log.warning("cut_at_shutdown", path=scope["path"],
                    request_id=scope.get("state", {}).get("request_id"))

    # Outermost last: request id, CORS, the shutdown drain, the key (from the headers),
    # then the body's size and deadline, then the app.
    app.add_middleware(BodyLimit, max_bytes=general.max_request_bytes,
                       timeout=general.body_timeout_seconds)
    app.add_middleware(KeyCheck, keys=keys, on_refused=refused)
    app.add_middleware(EndAtShutdown, drain=drain, on_cut=cut)
    if general.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=general.cors_origins,
                           allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                           expose_headers=["x-request-id"])
    app.add_middleware(RequestId)  # added last: outside the others, on every reply
    app.state.metrics = metrics
    app.state.service = chat
    app.state.drain = drain  # the server ends it at SIGTERM's grace period (http.server)

    async def authenticate_caller(request: Request) -> Caller:
        # KeyCheck has checked the key before the body; a route it does not guard is
        # checked here, the same way.
        found = request.scope.get("state", {}).get(CALLER)
        if isinstance(found, Caller):
            return found
        try:
            return check_key(keys, request.headers.get("authorization"))
        except ProxyError as exc:
            refused(request.scope, exc)
            raise

    auth = Depends(authenticate_caller)

    @app.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request,
                               caller: Caller = auth) -> Response:
        """Chat completion, streamed (SSE) or whole, with a top-level `thinkstop` decision."""
        return await chat.complete(body, caller, request.receive, _request_id(request))

    @app.post("/chat/completions", include_in_schema=False, response_model=None)
    async def chat_completions_alias(body: ChatCompletionRequest, request: Request,
                                     caller: Caller = auth) -> Response:
        return await chat.complete(body, caller, request.receive, _request_id(request))

    @app.post("/v1/responses", tags=["openai"], response_model=None)
    async def create_response(body: ResponsesRequest, request: Request,
                              caller: Caller = auth) -> Response:
        """A Responses API response, streamed (named SSE events) or whole, halted as chat is."""
        return await responses.create(body, caller, request.receive, _request_id(request))

    @app.get("/v1/responses/{response_id}", tags=["openai"], dependencies=[auth])
    async def get_response(response_id: str) -> dict[str, Any]:
        """A recent response kept by this replica (see previous_response_id)."""
        return responses.retrieve(response_id)

    @app.post("/v1/completions", tags=["openai"], response_model=None)
    async def text_completions(body: CompletionRequest, request: Request,
                               caller: Caller = auth) -> Response:
        """Text completion for raw-completion models (halted when the prompt opens a think
        block; otherwise passed through)."""
        return await completions.complete(body, caller, request.receive,
                                          _request_id(request))

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": "thinkstop"}

    @app.get("/v1/models", dependencies=[auth], tags=["openai"])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(name) for name in routes]}

    @app.get("/v1/models/{model_id:path}", dependencies=[auth], tags=["openai"])
    async def model(model_id: str) -> dict[str, Any]:
        if model_id not in routes:
            raise ProxyError(404, f"model {echo(model_id)} not found; served: "
                             f"{', '.join(routes)}", type_="not_found_error",
                             code="model_not_found", param="model")
        return model_card(model_id)

    @app.get("/health/liveliness", tags=["health"])
    async def liveliness() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/readiness", tags=["health"], response_model=None)
    async def readiness(request: Request) -> Response:
        """Open to load balancers; the model names only to a caller with a key (when
        keys are configured), as /v1/models."""
        waiting = []
        for name, route in routes.items():
            ready = getattr(route.upstream, "ready", None)  # optional hook
            if callable(ready) and not await ready():
                waiting.append(name)
        status = 503 if waiting else 200
        body: dict[str, Any] = {"status": "waiting" if waiting else "ready"}
        token = bearer_token(request.headers.get("authorization"))
        if not keys.required or (token is not None and keys.identify(token) is not None):
            body.update(models=list(routes), waiting=waiting)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
