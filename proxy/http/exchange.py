"""One request's life at the HTTP edge, whatever the endpoint (chat, Responses, text
completions): resolve the model and options, admit it under its budgets, build its halting
runs, answer (streamed or whole), and finish its bookkeeping exactly once.

Validation, budgets and opening the upstream happen before any response is returned, so
those failures are proper HTTP errors (upstream failures mapped by
:func:`thinkstop.proxy.http.errors.upstream_failure`); after the first streamed byte an
error can only travel in-band. A client that leaves at any point cancels the work: every
upstream stream and probe is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import Response

from thinkstop.proxy.anchors import Anchors, apply_anchors
from thinkstop.proxy.config import ModelEntry, ProxyConfig, ThinkstopOptions
from thinkstop.proxy.engine.accounting import RunResult
from thinkstop.proxy.engine.probing import ProbeSlots
from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.engine.shadow import (
    chosen_for_shadow,
    natural_answer,
    shadow_trace,
    would_have,
)
from thinkstop.proxy.errors import ProxyError, echo
from thinkstop.proxy.guard.budgets import Scope
from thinkstop.proxy.guard.keys import Caller
from thinkstop.proxy.guard.scopes import Admission, Budgets
from thinkstop.proxy.http.disconnect import ClientGone, unless_disconnected
from thinkstop.proxy.http.errors import upstream_failure
from thinkstop.proxy.http.protocol import completion_cap
from thinkstop.proxy.http.request_checks import build_policy, cap_binds, continuation_for
from thinkstop.proxy.http.sse import SSEResponse
from thinkstop.proxy.observe.metrics import ProxyMetrics
from thinkstop.proxy.observe.redaction import Redactor
from thinkstop.proxy.observe.request_log import request_fields
from thinkstop.proxy.observe.traces import TraceSink
from thinkstop.proxy.upstreams.base import ChatRequest, Continuation, Upstream, UpstreamError
from thinkstop.proxy.upstreams.chat_base import has_tools

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
    anchors: Anchors | None = None  # worked examples added to every request (proxy.anchors)
    anchor_tokens: int = 0  # about how many tokens the examples are

    def anchors_for(self, options: ThinkstopOptions) -> Anchors | None:
        """The examples this request gets: none when the model has none or the request
        turned them off (``"anchors": false``)."""
        return None if options.anchors is False else self.anchors


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request will run: the upstream request, its policy and run settings."""

    route: ModelRoute
    request: ChatRequest
    options: ThinkstopOptions
    run_options: RunOptions
    policy_cap: int | None
    probe_route: ModelRoute | None = None  # another model answering the probes, if any

    @property
    def show_reasoning(self) -> bool:
        return self.options.stream_reasoning is not False


class Edge:
    """What every endpoint shares: config, routes, metrics, the log, budgets."""

    def __init__(self, config: ProxyConfig, routes: Mapping[str, ModelRoute],
                 metrics: ProxyMetrics, log: Any, *, budgets: Budgets,
                 redact: Redactor, traces: TraceSink | None = None) -> None:
        self.config = config
        self.routes = routes
        self.metrics = metrics
        self.log = log
        self.budgets = budgets
        self.redact = redact
        self.traces = traces  # where shadow-mode traces go (None: not recorded)
        # One cap on probes in flight for the whole replica (probes are shed first).
        self.probe_slots = ProbeSlots(config.general_settings.probe_capacity())

    def route(self, name: str) -> tuple[ModelRoute, ModelEntry]:
        route = self.routes.get(name)
        entry = self.config.model(name)
        if route is None or entry is None:
            raise ProxyError(404, f"model {echo(name)} not found; served: {', '.join(self.routes)}",
                             type_="not_found_error", code="model_not_found", param="model")
        return route, entry

    def exchange(self, *, model: str, stream: bool, caller: Caller,
                 request_id: str) -> Exchange:
        log = self.log.bind(request_id=request_id, model=model[:200], stream=stream,
                            caller=caller.name)
        return Exchange(self, model=model, stream=stream, caller=caller, log=log,
                        request_id=request_id)


class Exchange:
    """One request's bookkeeping, finished exactly once however it ends."""

    def __init__(self, edge: Edge, *, model: str, stream: bool, caller: Caller,
                 log: Any, request_id: str = "") -> None:
        self.edge = edge
        self.request_id = request_id
        self.model = model
        self.stream = stream
        self.caller = caller
        self.log = log
        self.started = time.perf_counter()
        self.wall_started = time.time()
        self.scopes: list[Scope] = []
        self.runs: list[HaltingRun] = []
        self.passthrough: RunResult | None = None  # the result of a pass-through
        self.first_at: float | None = None
        self.admission: Admission | None = None
        self.messages: list[dict[str, Any]] = []  # as sent upstream (shadow traces may keep them)
        self._counted = False
        self._finished = False

    # -- before the response -----------------------------------------------------------
    async def plan(self, messages: list[dict[str, Any]], params: dict[str, Any],
                   override: Any = None) -> Plan:
        """Route, options, policy and continuation for this request; admitted under its
        budgets (a 4xx raises here, before anything is sent upstream)."""
        edge = self.edge
        route, entry = edge.route(self.model)
        self.scopes = Budgets.scopes(entry, self.caller)
        options = edge.config.options_for(entry, override)
        cap = Budgets.request_cap(self.scopes)
        policy = build_policy(options, cap)
        continuation, fallbacks = continuation_for(
            self.model, route.upstream, route.continuation, tools=has_tools(params))
        anchors = route.anchors_for(options)
        if anchors is not None:
            messages = apply_anchors(messages, anchors, options.anchors_mode or "turns")
        self.admission = await edge.budgets.admit(self.scopes,
                                                  reserve_for(messages, params, policy.max_tokens))
        self.log.debug("request_prompt", messages=messages)
        binds = cap_binds(policy, cap)
        shadow = chosen_for_shadow(options.shadow)
        run_options = RunOptions(
            **options.run_fields(),
            continuation=continuation,
            enabled=options.enabled is not False,
            hidden_reasoning=bool(options.hidden_reasoning),
            retries=edge.config.general_settings.upstream_retries,
            fallbacks=fallbacks,
            cap_reason="budget_cap" if binds else "max_tokens",
            budget_cap=cap if binds else None,
            completion_cap=completion_cap(params),
            shadow=shadow,
        )
        self.messages = messages
        request = ChatRequest(route.upstream_model, messages, params)
        probe_route = edge.routes.get(options.probe_model) if options.probe_model else None
        return Plan(route, request, options, run_options, cap, probe_route)

    def open_runs(self, plan: Plan, n: int = 1) -> list[HaltingRun]:
        """``n`` independent halting runs of ``plan`` (one per choice)."""
        probe = plan.probe_route
        probe_request = None if probe is None else ChatRequest(
            probe.upstream_model, plan.request.messages, plan.request.params)
        # One policy each: a policy keeps the state of the run it watches.
        self.runs = [HaltingRun(plan.route.upstream, plan.request,
                                build_policy(plan.options, plan.policy_cap),
                                plan.run_options, log=self.log,
                                probe_upstream=None if probe is None else probe.upstream,
                                probe_name=None if probe is None else probe.name,
                                probe_request=probe_request,
                                probe_slots=self.edge.probe_slots) for _ in range(n)]
        for run in self.runs:
            run.result.expose_probe_answers = plan.options.expose_probe_answers is True
        anchors = plan.route.anchors_for(plan.options)
        if anchors is not None:
            for run in self.runs:
                run.result.anchors = {"examples": len(anchors.examples),
                                      "tokens": plan.route.anchor_tokens}
        self._count_in()
        return self.runs

    def _count_in(self) -> None:
        if not self._counted:
            self._counted = True
            self.edge.metrics.in_flight.inc()

    async def start_runs(self) -> None:
        """Open every run's upstream stream; if one fails, the others are stopped."""
        if len(self.runs) == 1:
            await self.runs[0].start()
            return
        tasks = [asyncio.ensure_future(run.start()) for run in self.runs]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    @property
    def results(self) -> list[RunResult]:
        if self.passthrough is not None:
            return [self.passthrough]
        return [run.result for run in self.runs]

    # -- answering ---------------------------------------------------------------------
    async def respond(self, receive: Receive, opened: Callable[[], Awaitable[None]], *,
                      stream: Callable[[], AsyncGenerator[bytes, None]] | None = None,
                      whole: Callable[[], Awaitable[Response]] | None = None) -> Response:
        """Open the upstream (``opened``), then answer as a stream or a whole body.

        Before the response starts, a disconnect cancels the work (499, never read), an
        upstream failure is its mapped HTTP error, and anything else is finished as an
        error and re-raised.
        """
        edge = self.edge
        self._count_in()
        try:
            if stream is not None:
                await unless_disconnected(receive, opened())
                keepalive = edge.config.general_settings.keepalive_seconds
                return SSEResponse(stream(), cleanup=lambda: self.finish("disconnected"),
                                   keepalive=keepalive)
            assert whole is not None

            async def run_whole() -> Response:
                await opened()
                return await whole()

            return await unless_disconnected(receive, run_whole())
        except ClientGone:
            await self.finish("disconnected")
            return Response(status_code=CLIENT_CLOSED)
        except UpstreamError as exc:
            error = self.upstream_error(exc)
            await self.finish("upstream_error", error.message)
            raise error from None
        except BaseException:
            await self.finish("error")
            raise

    def upstream_error(self, exc: UpstreamError) -> ProxyError:
        """Count an upstream failure and map it to the client's error."""
        self.edge.metrics.upstream_errors.labels(self._label(), exc.kind).inc()
        return upstream_failure(exc, self.edge.redact(exc.message))

    def first_byte(self) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()

    # -- the end -----------------------------------------------------------------------
    async def finish(self, status: str, error: str | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        edge = self.edge
        results = self.results
        try:
            for run in self.runs:
                await run.aclose()
        finally:
            if self._counted:
                edge.metrics.in_flight.dec()
            if self.admission is not None:
                # Settled off the response path: the budget store's I/O never holds it.
                spent = sum(r.usage().prompt_tokens + r.usage().completion_tokens
                            for r in results)
                edge.budgets.settle(self.admission, spent)
            self._shadow(status)
            self._done(results, status, error)

    def _shadow(self, status: str) -> None:
        """Shadow mode: one trace line per run, and the would-have metrics."""
        edge = self.edge
        if status != "ok":
            return
        model = self._label()
        keep = edge.config.thinkstop_settings.trace_prompts
        for i, run in enumerate(self.runs):
            if not run.options.shadow:
                continue
            answer = natural_answer("".join(run.answer_parts))
            would = would_have(run, answer)
            edge.metrics.record_shadow(model, would)
            if edge.traces is None:
                continue
            trace = shadow_trace(
                run, answer, would, request_id=self.request_id + (f"-{i}" if i else ""),
                model=model, started=self.wall_started,
                prompt=self.messages if keep else None)
            edge.traces.write(trace.dumps())

    def _label(self) -> str:
        # Only served names become label values: a client's made-up model names must not
        # grow the metrics without bound.
        return self.model if self.model in self.edge.routes else UNKNOWN_MODEL

    def _done(self, results: Sequence[RunResult], status: str, error: str | None) -> None:
        """Metrics and the one log line of a finished request."""
        metrics = self.edge.metrics
        model = self._label()
        elapsed = time.perf_counter() - self.started
        stream = str(self.stream).lower()
        metrics.requests.labels(model, stream, status).inc()
        metrics.latency.labels(model, stream).observe(elapsed)
        if self.first_at is not None:
            metrics.ttft.labels(model).observe(self.first_at - self.started)
        for result in results:
            if status in ("ok", "disconnected"):
                metrics.record(model, result)
            for fault in result.faults:
                metrics.faults.labels(model, fault.partition(":")[0]).inc()
        fields = request_fields(results[0] if results else None)
        if len(results) > 1:
            fields["n"] = len(results)
            fields["choices_halted"] = [r.halted for r in results]
            for name in ("prompt_tokens", "completion_tokens"):
                fields[name] = sum(getattr(r.usage(), name) for r in results)
        if self.first_at is not None:
            fields["ttft_ms"] = round((self.first_at - self.started) * 1000, 2)
        if error is not None:
            fields["error"] = self.edge.redact(error)[:300]
        self.log.info("request", status=status, duration_ms=round(elapsed * 1000, 2), **fields)


def reserve_for(messages: Sequence[dict[str, Any]], params: Mapping[str, Any],
                reasoning_cap: int | None) -> int:
    """What a request may cost at most, reserved in its budget windows at admission and
    settled with what it really spent at the end: its prompt (about 4 characters a
    token) plus the most it may generate: the client's max_tokens (it holds over every
    upstream call), or the reasoning cap (the policy's max_tokens, which budgets tighten)
    plus an answer allowance. A client that sets max_tokens reserves less, so more of its
    requests fit in a window. Probes re-read the reasoning, so a long-probed request can
    spend past this; the excess is added when it settles (``proxy.guard.budgets`` says what
    bounds the overshoot)."""
    from thinkstop.proxy.upstreams.thinking import message_text

    prompt = sum(len(message_text(m.get("content"))) for m in messages) // 4 + 4 * len(messages)
    bound = (reasoning_cap if reasoning_cap is not None else DEFAULT_RESERVE) + ANSWER_RESERVE
    client = completion_cap(dict(params))
    return prompt + (bound if client is None else min(client, bound))


DEFAULT_RESERVE = 16_384  # reasoning reserved when no cap bounds it (the default max_tokens)
ANSWER_RESERVE = 1024  # answer tokens reserved on top of the reasoning cap
