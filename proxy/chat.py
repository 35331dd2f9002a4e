"""``POST /v1/chat/completions``: resolve the model and options, run, respond.

Validation and opening the upstream happen before any response is returned, so those
failures are proper HTTP errors; after the first streamed byte an error can only travel
in-band, as a ``data: {"error": ...}`` frame followed by ``[DONE]``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, Response

from proxy.accounting import RunResult
from proxy.config import ProxyConfig, ThinkstopOptions
from proxy.errors import ProxyError, error_body, upstream_failure
from proxy.metrics import ProxyMetrics
from proxy.orchestrator import HaltingRun, RunOptions
from proxy.protocol import ChatCompletionRequest
from proxy.request_log import request_fields
from proxy.responses import ChunkBuilder, completion_body
from proxy.sse import DONE, SSEResponse, frame
from proxy.upstreams.base import ChatRequest, Continuation, Upstream, UpstreamError
from scheduler import Guarded, GuardRails, PolicySpecError, create_policy


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A served model: its upstream, upstream model id and resolved continuation."""

    name: str
    upstream_model: str
    upstream: Upstream
    continuation: Continuation | None


class ChatService:
    """The chat endpoint's logic, free of routing details."""

    def __init__(self, config: ProxyConfig, routes: Mapping[str, ModelRoute],
                 metrics: ProxyMetrics, log: Any) -> None:
        self.config = config
        self.routes = routes
        self.metrics = metrics
        self.log = log

    def _route(self, name: str) -> ModelRoute:
        route = self.routes.get(name)
        if route is None:
            raise ProxyError(404, f"model {name!r} not found; served: {', '.join(self.routes)}",
                             type_="not_found_error", code="model_not_found", param="model")
        return route

    def _options(self, route: ModelRoute, body: ChatCompletionRequest) -> ThinkstopOptions:
        entry = self.config.model(route.name)
        assert entry is not None
        override = body.thinkstop.as_options() if body.thinkstop else None
        return self.config.options_for(entry, override)

    @staticmethod
    def _policy(options: ThinkstopOptions) -> Guarded:
        try:
            rails = GuardRails(min_tokens=options.min_tokens or 0, max_tokens=options.max_tokens,
                               max_probes=options.max_probes)
            return create_policy(options.policy or "plateau", rails)
        except (PolicySpecError, ValueError) as exc:
            raise ProxyError(400, f"thinkstop: {exc}", code="invalid_thinkstop",
                             param="thinkstop") from None

    async def complete(self, body: ChatCompletionRequest) -> Response:
        started = time.perf_counter()
        log = self.log.bind(request_id=uuid.uuid4().hex[:16], model=body.model,
                            stream=body.stream)
        try:
            route = self._route(body.model)
            options = self._options(route, body)
            policy = self._policy(options)
        except ProxyError as exc:
            self._done(log, body, started, None, f"error_{exc.status}")
            raise
        log.debug("request_prompt", messages=body.message_dicts())
        run = HaltingRun(
            route.upstream,
            ChatRequest(route.upstream_model, body.message_dicts(), body.upstream_params()),
            policy,
            RunOptions(
                chunk_tokens=options.chunk_tokens or 64,
                probe_tokens=options.probe_tokens or 16,
                probe_concurrency=options.probe_concurrency or 2,
                probe_timeout=options.probe_timeout or 10.0,
                continuation=route.continuation,
                enabled=options.enabled is not False,
                hidden_reasoning=bool(options.hidden_reasoning),
            ),
            log=log,
        )
        try:
            await run.start()
        except UpstreamError as exc:
            self.metrics.upstream_errors.labels(body.model).inc()
            self._done(log, body, started, None, "upstream_error", error=exc.message)
            raise upstream_failure(exc.message) from None
        show_reasoning = options.stream_reasoning is not False
        if body.stream:
            return SSEResponse(self._stream(run, body, show_reasoning, log, started))
        return await self._whole(run, body, show_reasoning, log, started)

    async def _whole(self, run: HaltingRun, body: ChatCompletionRequest, show_reasoning: bool,
                     log: Any, started: float) -> Response:
        try:
            reasoning, content = await run.collect()
        except UpstreamError as exc:
            self.metrics.upstream_errors.labels(body.model).inc()
            self._done(log, body, started, run.result, "upstream_error", error=exc.message)
            raise upstream_failure(exc.message) from None
        finally:
            await run.aclose()
        self._done(log, body, started, run.result, "ok")
        payload = completion_body(body.model, reasoning if show_reasoning else None, content,
                                  run.result)
        return JSONResponse(payload)

    async def _stream(self, run: HaltingRun, body: ChatCompletionRequest, show_reasoning: bool,
                      log: Any, started: float) -> AsyncGenerator[bytes, None]:
        builder = ChunkBuilder(body.model)
        status = "disconnected"  # unless we get to the end
        error: str | None = None
        first_at: float | None = None
        try:
            try:
                async for delta in run.events():
                    if delta.kind == "reasoning" and not show_reasoning:
                        continue
                    if first_at is None:
                        first_at = time.perf_counter()
                    yield frame(builder.delta(delta.kind, delta.text))
                yield frame(builder.finish(run.result, last=not body.include_usage))
                if body.include_usage:
                    yield frame(builder.usage(run.result))
                status = "ok"
            except UpstreamError as exc:
                self.metrics.upstream_errors.labels(body.model).inc()
                status, error = "upstream_error", exc.message
                yield frame(error_body(exc.message, "upstream_error", "upstream_error"))
            yield DONE
        finally:
            await run.aclose()
            if first_at is not None:
                self.metrics.ttft.labels(body.model).observe(first_at - started)
            self._done(log, body, started, run.result, status, error=error,
                       ttft_ms=None if first_at is None else (first_at - started) * 1000)

    def _done(self, log: Any, body: ChatCompletionRequest, started: float,
              result: RunResult | None, status: str, *, error: str | None = None,
              ttft_ms: float | None = None) -> None:
        elapsed = time.perf_counter() - started
        stream = str(body.stream).lower()
        self.metrics.requests.labels(body.model, stream, status).inc()
        self.metrics.latency.labels(body.model, stream).observe(elapsed)
        if result is not None and status in ("ok", "disconnected"):
            self.metrics.record(body.model, result)
        fields = request_fields(result)
        if ttft_ms is not None:
            fields["ttft_ms"] = round(ttft_ms, 2)
        if error is not None:
            fields["error"] = error[:300]
        log.info("request", status=status, duration_ms=round(elapsed * 1000, 2), **fields)
