"""``POST /v1/chat/completions``: resolve the model and options, run, respond.

Validation, budgets and opening the upstream happen before any response is returned, so
those failures are proper HTTP errors (upstream failures mapped by
:func:`thinkstop.proxy.http.errors.upstream_failure`); after the first streamed byte an
error can only travel in-band, as a ``data: {"error": ...}`` frame followed by ``[DONE]``.
A client that leaves at any point cancels the work: the upstream stream and every probe are closed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, Response

from thinkstop.proxy.config import ModelEntry, ProxyConfig, ThinkstopOptions
from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.budgets import Scope
from thinkstop.proxy.guard.keys import Caller
from thinkstop.proxy.guard.scopes import Budgets
from thinkstop.proxy.http.disconnect import ClientGone, unless_disconnected
from thinkstop.proxy.http.errors import upstream_failure
from thinkstop.proxy.http.protocol import ChatCompletionRequest
from thinkstop.proxy.http.request_checks import build_policy, cap_binds, check_supported
from thinkstop.proxy.http.responses import ChunkBuilder, completion_body
from thinkstop.proxy.http.sse import DONE, SSEResponse, frame
from thinkstop.proxy.observe.metrics import ProxyMetrics
from thinkstop.proxy.observe.redaction import Redactor
from thinkstop.proxy.observe.request_log import request_fields
from thinkstop.proxy.upstreams.base import ChatRequest, Continuation, Upstream, UpstreamError

Receive = Callable[[], Awaitable[Any]]
CLIENT_CLOSED = 499  # nginx's code for "client closed the request"; nobody reads it
UNKNOWN_MODEL = "(unknown)"


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A served model: its upstream, upstream model id and resolved continuation."""

    name: str
    upstream_model: str
    upstream: Upstream
    continuation: Continuation | None


class _Request:
    """One request's bookkeeping, finished exactly once however it ends."""

    def __init__(self, service: ChatService, body: ChatCompletionRequest, caller: Caller,
                 log: Any) -> None:
        self.service = service
        self.body = body
        self.caller = caller
        self.log = log
        self.started = time.perf_counter()
        self.scopes: list[Scope] = []
        self.run: HaltingRun | None = None
        self.first_at: float | None = None
        self._finished = False

    async def finish(self, status: str, error: str | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        service, run = self.service, self.run
        result = None if run is None else run.result
        try:
            if run is not None:
                await run.aclose()
        finally:
            if run is not None:
                service.metrics.in_flight.dec()
            if result is not None and self.scopes:
                await service.budgets.record(self.scopes, _spent(result.usage_dict()))
            service.done(self, result, status, error)


def _spent(usage: dict[str, Any]) -> int:
    return int(usage.get("total_tokens") or 0)


class ChatService:
    """The chat endpoint's logic, free of routing details."""

    def __init__(self, config: ProxyConfig, routes: Mapping[str, ModelRoute],
                 metrics: ProxyMetrics, log: Any, *, budgets: Budgets,
                 redact: Redactor) -> None:
        self.config = config
        self.routes = routes
        self.metrics = metrics
        self.log = log
        self.budgets = budgets
        self.redact = redact

    def _route(self, name: str) -> tuple[ModelRoute, ModelEntry]:
        route = self.routes.get(name)
        entry = self.config.model(name)
        if route is None or entry is None:
            raise ProxyError(404, f"model {name!r} not found; served: {', '.join(self.routes)}",
                             type_="not_found_error", code="model_not_found", param="model")
        return route, entry

    def _options(self, entry: ModelEntry, body: ChatCompletionRequest) -> ThinkstopOptions:
        override = body.thinkstop
        return self.config.options_for(entry, override)

    async def _prepare(self, req: _Request) -> HaltingRun:
        body = req.body
        check_supported(body)
        route, entry = self._route(body.model)
        req.scopes = Budgets.scopes(entry, req.caller)
        options = self._options(entry, body)
        cap = Budgets.request_cap(req.scopes)
        policy = build_policy(options, cap)
        await self.budgets.admit(req.scopes)
        req.log.debug("request_prompt", messages=body.message_dicts())
        return HaltingRun(
            route.upstream,
            ChatRequest(route.upstream_model, body.message_dicts(), body.upstream_params()),
            policy,
            RunOptions(
                **options.run_fields(),
                continuation=route.continuation,
                enabled=options.enabled is not False,
                hidden_reasoning=bool(options.hidden_reasoning),
                retries=self.config.general_settings.upstream_retries,
                fallbacks=route.upstream.capabilities.continuations,
                cap_reason="budget_cap" if cap_binds(policy, cap) else "max_tokens",
                budget_cap=cap if cap_binds(policy, cap) else None,
            ),
            log=req.log,
        )

    async def complete(self, body: ChatCompletionRequest, caller: Caller,
                       receive: Receive) -> Response:
        log = self.log.bind(request_id=uuid.uuid4().hex[:16], model=body.model[:200],
                            stream=body.stream, caller=caller.name)
        req = _Request(self, body, caller, log)
        try:
            run = await self._prepare(req)
        except ProxyError as exc:
            await req.finish(f"error_{exc.status}", exc.message)
            raise
        req.run = run
        self.metrics.in_flight.inc()
        try:
            if body.stream:
                await unless_disconnected(receive, run.start())
                show = self._options_show_reasoning(body)
                return SSEResponse(self._stream(req, show),
                                   cleanup=lambda: req.finish("disconnected"))
            return await unless_disconnected(receive, self._whole(req))
        except ClientGone:
            await req.finish("disconnected")
            return Response(status_code=CLIENT_CLOSED)
        except UpstreamError as exc:
            self.metrics.upstream_errors.labels(body.model, exc.kind).inc()
            error = upstream_failure(exc, self.redact(exc.message))
            await req.finish("upstream_error", error.message)
            raise error from None
        except BaseException:
            await req.finish("error")
            raise

    def _options_show_reasoning(self, body: ChatCompletionRequest) -> bool:
        entry = self.config.model(body.model)
        assert entry is not None
        return self._options(entry, body).stream_reasoning is not False

    async def _whole(self, req: _Request) -> Response:
        run = req.run
        assert run is not None
        await run.start()
        reasoning, content = await run.collect()
        await req.finish("ok")
        show = self._options_show_reasoning(req.body)
        return JSONResponse(completion_body(req.body.model, reasoning if show else None,
                                            content, run.result))

    async def _stream(self, req: _Request, show_reasoning: bool
                      ) -> AsyncGenerator[bytes, None]:
        run, body = req.run, req.body
        assert run is not None
        builder = ChunkBuilder(body.model)
        status, error = "disconnected", None  # unless we get to the end
        try:
            try:
                async for delta in run.events():
                    if delta.kind == "reasoning" and not show_reasoning:
                        continue
                    if req.first_at is None:
                        req.first_at = time.perf_counter()
                    yield frame(builder.delta(delta.kind, delta.text))
                yield frame(builder.finish(run.result, last=not body.include_usage))
                if body.include_usage:
                    yield frame(builder.usage(run.result))
                status = "ok"
            except UpstreamError as exc:
                self.metrics.upstream_errors.labels(body.model, exc.kind).inc()
                failure = upstream_failure(exc, self.redact(exc.message))
                status, error = "upstream_error", failure.message
                yield frame(failure.body())
            yield DONE
        finally:
            await req.finish(status, error)

    def done(self, req: _Request, result: Any, status: str, error: str | None) -> None:
        """Metrics and the one log line of a finished request."""
        body = req.body
        # Only served names become label values: a client's made-up model names must not
        # grow the metrics without bound.
        model = body.model if body.model in self.routes else UNKNOWN_MODEL
        elapsed = time.perf_counter() - req.started
        stream = str(body.stream).lower()
        self.metrics.requests.labels(model, stream, status).inc()
        self.metrics.latency.labels(model, stream).observe(elapsed)
        if req.first_at is not None:
            self.metrics.ttft.labels(model).observe(req.first_at - req.started)
        if result is not None:
            if status in ("ok", "disconnected"):
                self.metrics.record(model, result)
            for fault in result.faults:
                self.metrics.faults.labels(model, fault.partition(":")[0]).inc()
        fields = request_fields(result)
        if req.first_at is not None:
            fields["ttft_ms"] = round((req.first_at - req.started) * 1000, 2)
        if error is not None:
            fields["error"] = self.redact(error)[:300]
        req.log.info("request", status=status, duration_ms=round(elapsed * 1000, 2), **fields)
