"""The halting loop for one request, independent of HTTP (the benchmark reuses it).

::

    run = HaltingRun(upstream, request, policy, RunOptions(...))
    await run.start()                 # opens the upstream: errors surface before output
    async for delta in run.events():  # Delta("reasoning" | "content" | "tool_call", ...)
        ...
    run.result                        # RunResult: decision + accounting

A pump task reads the upstream stream into a queue; probe completions land in the same
queue, so a probe's verdict is acted on as soon as it arrives, between any two tokens, and
the stream is never held up by a probe. The queue holds at most ``STREAM_BUFFER`` upstream
events: when the client reads slower than the upstream writes, the pump stops reading and
the upstream connection's flow control holds the upstream back (backpressure), so a slow
client costs a bounded buffer, never the whole stream in memory. On halt the upstream
stream is closed at once and the continuation streams the model's own final answer from
the truncated reasoning.

Faults: opening the main stream is retried (``retries``) only for failures that are safe
to retry and only before anything reached the client; a main stream that breaks during
the reasoning becomes a halt (``reason: "upstream_error"``) whose continuation answers
from the reasoning so far; probes that keep failing switch probing off for the request
(``probes_unavailable``) while the ``max_tokens`` cut still holds. See
:mod:`thinkstop.proxy.engine.continuation` for the continuation's fallbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from thinkstop.proxy.engine.accounting import RunResult, tool_call_tokens
from thinkstop.proxy.engine.continuation import ContinuationChain, fallback_chain
from thinkstop.proxy.engine.offload import off_loop, request_chars
from thinkstop.proxy.engine.probing import Marks, ProbeOutcome, ProbeRunner, ProbeSlots
from thinkstop.proxy.upstreams.base import (
    ChatRequest,
    Continuation,
    EventStream,
    StreamEvent,
    ToolCallDelta,
    Upstream,
    UpstreamError,
)
from thinkstop.proxy.upstreams.providers import reasoning_effort
from thinkstop.scheduler import Guarded, Observation, extract_answer, is_hedging
from thinkstop.scheduler.schedule import create_schedule
from thinkstop.scheduler.signals import has_cue, repetition

DeltaKind = Literal["reasoning", "content", "tool_call"]
# Upstream events read ahead of the loop at most (each at most a few hundred characters,
# see chunk_events.MAX_EVENT_CHARS): enough that the loop takes a batch per wake-up.
STREAM_BUFFER = 64


@dataclass(frozen=True, slots=True)
class Delta:
    """What the client gets next: reasoning or answer text, or a piece of a tool call
    (``tool_call``); ``logprobs``: the answer tokens' entries, when asked for."""

    kind: DeltaKind
    text: str
    tool_call: ToolCallDelta | None = None
    logprobs: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How one request is run (already merged from settings, model and request)."""

    chunk_tokens: int = 64
    probe_tokens: int = 16
    probe_concurrency: int = 2
    probe_timeout: float | None = None  # None: the upstream's estimate, else 10 s
    continuation: Continuation | None = "reask"
    enabled: bool = True
    hidden_reasoning: bool = False
    answer_tokens: int = 4096  # answer allowance on top of max_tokens for hidden reasoning
    drain_timeout: float = 2.0
    retries: int = 0  # retries of the main stream's opening (connect errors, 502/503/504)
    retry_backoff: float = 0.25  # seconds, doubled on each retry
    probe_failure_limit: int = 3  # consecutive probe failures that switch probing off
    fallbacks: tuple[Continuation, ...] = ()  # other strategies to try if one fails
    rerun: bool = True  # last resort after every strategy failed
    cap_reason: str = "max_tokens"  # "budget_cap" when a budget set the max_tokens cut
    budget_cap: int | None = None
    # Shadow: probe and let the policy decide as usual, but never act on its halts (the
    # max_tokens cut still holds); ``shadow_halt`` says where it would have halted.
    shadow: bool = False
    probe_at_start: bool = False  # one probe before any reasoning (the no-thinking answer)
    probe_schedule: str | None = None  # a schedule spec (scheduler.schedule); None: fixed
    # The client's max_tokens / max_completion_tokens: every completion token the request
    # is billed for (main stream, probes, continuation) fits in it; the continuation gets
    # what is left, no probe starts that could pass it, and reasoning that reaches it
    # stops (reason "completion_cap"; tokens the upstream had in flight are billed too).
    completion_cap: int | None = None
    # After a halt: "hard" closes the reasoning at once; "soft" adds a wrap-up cue and lets
    # the model reason ``grace_tokens`` more before its answer (raw continuations only).
    halt: Literal["hard", "soft"] = "hard"
    grace_tokens: int = 64


class _End:
    pass


_END = _End()
_PROBE = object()


class HaltingRun:
    """One request's main stream, probes, halt and continuation."""

    def __init__(self, upstream: Upstream, request: ChatRequest, policy: Guarded,
                 options: RunOptions, *, log: Any = None,
                 probe_upstream: Upstream | None = None,
                 probe_request: ChatRequest | None = None,
                 probe_name: str | None = None,
                 probe_slots: ProbeSlots | None = None) -> None:
        """``probe_upstream``: another model that answers the probes by reading this
        model's reasoning (``probe_request``: the request as that model gets it;
        ``probe_name``: its name in the decision and the metrics, by default the
        upstream's own); the main stream and the continuation stay this model's own.
        ``probe_slots``: the replica's cap on probes in flight (probes past it are shed)."""
        self.upstream = upstream
        self.request = request
        self.policy = policy
        self.options = options
        self.log = log
        self.hidden = options.enabled and (
            options.hidden_reasoning or upstream.capabilities.hides_reasoning
        )
        self.probing = options.enabled and not self.hidden and policy.needs_probes
        self.result = RunResult(policy=policy.spec(), enabled=options.enabled,
                                chunk_tokens=options.chunk_tokens, max_tokens=policy.max_tokens,
                                budget_cap=options.budget_cap, shadow=options.shadow)
        if not options.enabled:
            self.result.reason = "disabled"
        elif self.hidden:
            self.result.reason = "hidden_reasoning"
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        # Room for upstream events in the queue; probe notices never wait for room.
        self._room = asyncio.Semaphore(STREAM_BUFFER)
        if probe_upstream is not None:
            self.result.probe_model = probe_name or probe_upstream.name
        self._probes = ProbeRunner(
            probe_upstream or upstream, probe_request or request,
            max_tokens=options.probe_tokens,
            max_in_flight=options.probe_concurrency, timeout=options.probe_timeout,
            notify=lambda: self._queue.put_nowait(_PROBE), log=log,
            failure_limit=options.probe_failure_limit, slots=probe_slots,
        )
        self._stream: EventStream | None = None
        self._continuation: AsyncGenerator[StreamEvent, None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._first: StreamEvent | None = None
        self._reasoning: list[str] = []  # released: streamed, probed, continued from
        self._tail = ""  # reasoning after its last word boundary, held back (see _release)
        self._after_halt = ""  # the first reasoning text that arrived after the halt
        self._chunk_text: list[str] = []
        self._schedule = create_schedule(options.probe_schedule, options.chunk_tokens)
        self._hold_from = self._earliest_halt() - _HOLD_LEAD
        self._thinking_done = False
        self._halt_reason: str | None = None
        # Every probe's observation, in boundary order (recorded traces are made of them).
        self.observations: list[Observation] = []
        self.shadow_halt: tuple[int, str] | None = None  # (tokens, reason), shadow only
        self.answer_parts: list[str] = []  # the answer text, kept in shadow mode only

    # -- lifecycle -------------------------------------------------------------------
    def _main_request(self) -> ChatRequest:
        if not self.hidden or self.policy.max_tokens is None:
            return self.request
        params = dict(self.request.params)
        if "max_completion_tokens" not in params:
            answer = params.pop("max_tokens", None) or self.options.answer_tokens
            params["max_completion_tokens"] = self.policy.max_tokens + int(answer)
        params.setdefault("reasoning_effort", reasoning_effort(self.policy.max_tokens))
        return ChatRequest(self.request.model, self.request.messages, params)

    async def start(self) -> None:
        """Open the upstream stream and read its first event (errors raise here).

        Nothing has reached the client yet, so a failure that is safe to retry (no
        connection; 502/503/504) is retried up to ``options.retries`` times.
        """
        # A huge prompt is counted in a thread: other streams never wait for its BPE.
        request = self.request
        self.result.main.prompt_estimate = await off_loop(
            lambda: self.upstream.count_prompt_tokens(request), request_chars(request))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.options.retries + 1),
            wait=wait_exponential(multiplier=self.options.retry_backoff),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, UpstreamError) and exc.retryable),
            before_sleep=self._retrying, reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._open()
        except BaseException:
            await self.aclose()
            raise

    async def _open(self) -> None:
        self._stream = self.upstream.stream(self._main_request())
        try:
            self._first = await anext(self._stream)
        except StopAsyncIteration:
            self._first = None
        except BaseException:
            await self._stream.aclose()
            raise

    def _retrying(self, state: RetryCallState) -> None:
        self.result.retries = state.attempt_number
        exc = state.outcome.exception() if state.outcome else None
        if self.log is not None and isinstance(exc, UpstreamError):
            self.log.warning("upstream_retry", attempt=state.attempt_number, kind=exc.kind,
                             status=exc.status_code)

    async def aclose(self) -> None:
        """Close everything this run opened (safe to call twice, and on disconnect)."""
        await self._probes.close()
        await self._stop_main()
        if self._continuation is not None:
            await self._continuation.aclose()

    async def _stop_main(self) -> None:
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            await asyncio.wait([self._pump])
        if self._stream is not None:
            await self._stream.aclose()

    async def _run_pump(self) -> None:
        assert self._stream is not None
        try:
            async for event in self._stream:
                await self._room.acquire()  # released when the loop takes the event
                self._queue.put_nowait(event)
        except Exception as exc:  # handed to the loop, which raises it to the caller
            self._queue.put_nowait(exc)
            return
        self._queue.put_nowait(_END)

    # -- the loop ---------------------------------------------------------------------
    async def events(self) -> AsyncGenerator[Delta, None]:
        """Reasoning and answer deltas for the client; ``result`` is final afterwards."""
        if self._stream is None:
            raise RuntimeError("call start() first")
        if self.probing and self.options.probe_at_start:
            self._probes.launch(0, "", Marks())
        if self._first is not None:
            await self._room.acquire()  # free: the queue is empty
            self._queue.put_nowait(self._first)
            self._pump = asyncio.ensure_future(self._run_pump())
        else:
            self._queue.put_nowait(_END)
        ended = False
        while not ended and self._halt_reason is None:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            out: list[Delta] = []
            failure: Exception | None = None
            for item in items:
                if item is _END:
                    ended = True
                elif item is _PROBE:
                    self._observe(self._probes.ready())
                elif isinstance(item, Exception):
                    failure = item  # the pump stops after an error: nothing follows it
                elif isinstance(item, StreamEvent):
                    self._room.release()
                    self._handle(item, out)
            if ended and self._halt_reason is None:
                self._release("", out, final=True)  # the model ended its thinking itself
            for delta in _coalesce(out):
                if self.options.shadow and delta.kind == "content":
                    self.answer_parts.append(delta.text)  # the shadow trace's answer
                yield delta  # what arrived before a failure still reaches the client
            if failure is not None:
                self._fail(failure)
        if self._halt_reason is not None:
            async for delta in self._halt():
                if self.options.shadow and delta.kind == "content":
                    self.answer_parts.append(delta.text)
                yield delta
        await self._probes.drain(self.options.drain_timeout)
        # Probes that finished after the thinking did are no decision, but still data.
        self.observations.extend(o for o in map(_observation, self._probes.ready()) if o)
        self._finish_accounting()

    def _fail(self, failure: Exception) -> None:
        """A broken main stream: answer from the reasoning so far where that is possible.

        Possible while the run is monitored, the model is still reasoning (no answer text
        was sent), some reasoning arrived, and a continuation exists; otherwise re-raise,
        and the client gets the error (in-band when streaming).
        """
        forcible = (
            isinstance(failure, UpstreamError)
            and self.options.enabled and not self.hidden and not self._thinking_done
            and self._halt_reason is None and self.result.main.reasoning > 0
            and self.options.continuation is not None
        )
        if not forcible:
            raise failure
        assert isinstance(failure, UpstreamError)
        self.result.faults.append("main_stream_failed")
        if self.log is not None:
            self.log.warning("main_stream_failed", kind=failure.kind,
                             error=failure.message[:200],
                             reasoning_tokens=self.result.main.reasoning)
        self._halt_reason = "upstream_error"

    def _handle(self, event: StreamEvent, out: list[Delta]) -> None:
        main = self.result.main
        if event.kind == "reasoning":
            tokens = event.tokens if event.tokens is not None else self.upstream.count_tokens(
                event.text)
            if self._halt_reason is not None:
                # Generated after the halt (queued behind it): spent, so counted, but
                # neither streamed nor given to the continuation, so max_tokens holds.
                main.discarded += tokens
                self._after_halt = self._after_halt or event.text
                return
            main.reasoning += tokens
            self._release(event.text, out)
            self._at_boundary()
        elif event.kind == "content":
            if self._halt_reason is not None:
                return  # the model's own answer raced the halt; the continuation wins
            self._release("", out, final=True)
            self._thinking_done = True
            main.content += event.tokens if event.tokens is not None else (
                self.upstream.count_tokens(event.text))
            out.append(Delta("content", event.text, logprobs=event.logprobs))
        elif event.kind == "tool_call" and event.tool_call is not None:
            if self._halt_reason is not None:
                return  # as for content: the continuation's own next step wins
            self._release("", out, final=True)
            self._thinking_done = True  # a tool call is the model's answer for this turn
            main.content += tool_call_tokens(self.upstream.count_tokens, event.tool_call)
            out.append(Delta("tool_call", "", tool_call=event.tool_call))
        elif event.kind == "usage" and event.usage is not None:
            main.exact = event.usage
        elif event.kind == "finish" and event.finish_reason:
            self.result.finish_reason = event.finish_reason

    def _release(self, text: str, out: list[Delta], *, final: bool = False) -> None:
        """Stream reasoning up to its last word boundary and hold back the rest.

        A halt then never splits a number or a word ("Total sheep = 1" of "17"): what the
        client saw, what the probes read and what the continuation continues from all end
        at whole words. The held tail is released when the next whitespace arrives, when
        the reasoning ends by itself, or once it is longer than any word (``_MAX_WORD``).
        Holding costs each token one token's wait, the first one included, so it starts
        only ``_HOLD_LEAD`` tokens before the first point where this run can halt.
        """
        tail = self._tail + text
        free = final or len(tail) > _MAX_WORD or self.result.main.reasoning < self._hold_from
        cut = len(tail) if free else _word_end(tail)
        ready, self._tail = tail[:cut], tail[cut:]
        if ready:
            self._reasoning.append(ready)
            self._chunk_text.append(ready)
            out.append(Delta("reasoning", ready))

    def _earliest_halt(self) -> int:
        """Reasoning tokens before which nothing can halt this run: not its caps, not a
        probe's verdict (none is taken before the schedule's first boundary, and the
        policy ignores verdicts before ``min_tokens``). An upstream failure can come
        earlier; its forced answer may then follow a partial word."""
        if not self.options.enabled:
            return _NEVER
        points = [cap for cap in (self.policy.max_tokens, self.options.completion_cap)
                  if cap is not None]
        if self.probing:
            first = 0 if self.options.probe_at_start else self._schedule.first_due
            points.append(max(first, self.policy.rails.min_tokens))
        return min(points, default=_NEVER)

    def _snap(self) -> str:
        """At a halt: drop the held partial word, unless what the upstream had already
        sent after it (now discarded) shows that the word was complete; returns the
        reasoning still to stream (the kept word, or nothing)."""
        kept = ""
        if not self._tail:
            return kept
        following = self._after_halt
        # Whitespace next, or closing punctuation last, shows the word was complete
        # (a point or comma after a digit may still be inside a number: "1." of "1.5").
        closed = self._tail[-1] in _WORD_CLOSERS and not (
            self._tail[-1] in ".," and self._tail[-2:-1].isdigit())
        if following[:1].isspace() or closed:
            kept = self._tail  # the word ended there: keep it
            self._reasoning.append(kept)
        else:
            dropped = self.upstream.count_tokens(self._tail)
            dropped = min(dropped, self.result.main.reasoning)
            self.result.main.reasoning -= dropped
            self.result.main.discarded += dropped
            self.result.cut_snapped_tokens = dropped
        self._tail = ""
        return kept

    def _at_boundary(self) -> None:
        tokens = self.result.main.reasoning
        if not self.options.enabled or self._thinking_done or self._halt_reason is not None:
            return
        if not self.hidden and self.policy.over_budget(tokens):
            self._halt_reason = self.options.cap_reason
            return
        cap = self.options.completion_cap
        if cap is not None and self._billed() >= cap:
            self._halt_reason = "completion_cap"
            return
        if not self.probing or self._probes.unavailable:
            return
        if cap is not None and self._billed() + self.options.probe_tokens > cap:
            return  # a probe now could bill past the client's max_tokens
        chunk = "".join(self._chunk_text)
        cue = has_cue(chunk) if self._schedule.reads_cues else False
        if not self._schedule.due(tokens, cue):
            return
        self._chunk_text.clear()
        rails = self.policy.rails
        if rails.max_probes is not None and (
            self.policy.probes + self._probes.in_flight >= rails.max_probes
        ):
            return
        if self.policy.wants_probe(tokens):
            # The probe reads the reasoning up to its last whole word (see _release); it
            # is recorded at the boundary (the tokens streamed so far), so that traces
            # keep the schedule's positions and replay sees what this loop sees.
            reasoning = "".join(self._reasoning)
            marks = Marks(hedged=is_hedging(chunk), cue=has_cue(chunk),
                          repetition=repetition(reasoning))
            self._probes.launch(tokens, reasoning, marks)

    def _observe(self, outcomes: list[ProbeOutcome]) -> None:
        for outcome in outcomes:
            observation = _observation(outcome)
            if observation is None:
                continue
            self.observations.append(observation)
            self.result.probe_lags.append(max(0, self.result.main.reasoning - outcome.tokens))
            if self._thinking_done or self._halt_reason is not None:
                continue
            decision = self.policy.observe(observation)
            self.result.probes_observed += 1
            if decision.signals is not None:
                self.result.signals = decision.signals.as_dict()
            if not decision.halt:
                continue
            reason = decision.reason
            if reason == "max_tokens":
                self._halt_reason = self.options.cap_reason
            elif not self.options.shadow:
                self._halt_reason = reason
            elif self.shadow_halt is None:
                self.shadow_halt = (observation.tokens, reason)
                self.result.would_halt = {"tokens": observation.tokens, "reason": reason}

    async def _halt(self) -> AsyncGenerator[Delta, None]:
        """Close the main stream now, then stream the continuation's answer."""
        self.result.halted = True
        self.result.reason = self._halt_reason or "halt"
        self.result.upstream_closed_early = self._halt_reason != "upstream_error"
        await self._stop_main()
        # Reasoning still queued arrived after the halt point: counted as discarded only.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, StreamEvent) and item.kind == "reasoning":
                self._handle(item, [])
        kept = self._snap()
        if kept:
            yield Delta("reasoning", kept)
        strategy = self.options.continuation
        cap = self.options.completion_cap
        left = None if cap is None else cap - self._billed()
        if left is not None and left <= 0:
            strategy = None  # the client's max_tokens is spent: no answer fits, as upstream
        self.result.strategy = strategy
        if strategy is None:
            self.result.finish_reason = "length"
            return
        chain = ContinuationChain(
            self.upstream, self.request, self._main_request(), self.result,
            strategies=fallback_chain(strategy, self.options.fallbacks,
                                      rerun=self.options.rerun),
            budget=self.policy.max_tokens, log=self.log, limit=left,
            grace_tokens=self.options.grace_tokens if self.options.halt == "soft" else 0,
        )
        if self.options.halt == "soft":
            self.result.halt_mode = "soft" if chain.grace_tokens else "hard"
            if not chain.grace_tokens:
                self.result.faults.append("soft_halt_unsupported")
        prompt = self.result.main.prompt_estimate + self.result.main.reasoning
        self._continuation = chain.events("".join(self._reasoning), prompt)
        try:
            async for event in self._continuation:
                kind: DeltaKind = ("tool_call" if event.kind == "tool_call" else
                                   "reasoning" if event.kind == "reasoning" else "content")
                yield Delta(kind, event.text, tool_call=event.tool_call,
                            logprobs=event.logprobs)
        finally:
            await self._continuation.aclose()

    def _billed(self) -> int:
        """Completion tokens billed so far: the main stream's and the probes', with each
        probe still running reserved at its limit (checked against completion_cap)."""
        probes = self._probes
        return (self.result.main.usage().completion_tokens + probes.usage.completion_tokens
                + probes.in_flight * self.options.probe_tokens)

    def _finish_accounting(self) -> None:
        probes = self._probes
        self.result.probe_usage = probes.usage
        self.result.probe_seconds = probes.seconds
        self.result.probes = probes.launched
        self.result.probes_failed = probes.failed
        self.result.probes_skipped = probes.skipped
        self.result.probes_shed = probes.shed
        self.result.probes_unavailable = probes.unavailable or (
            probes.launched > 0 and probes.failed == probes.launched)
        if self.result.probes_unavailable:
            self.result.faults.append("probes_unavailable")

    async def collect(self) -> tuple[str, str]:
        """Run to the end; return (reasoning, answer) text. For non-streaming callers."""
        reasoning: list[str] = []
        content: list[str] = []
        async for delta in self.events():
            if delta.kind != "tool_call":
                (reasoning if delta.kind == "reasoning" else content).append(delta.text)
        return "".join(reasoning), "".join(content)


def _observation(outcome: ProbeOutcome) -> Observation | None:
    """What the policy sees of a finished probe (None when the probe failed)."""
    if outcome.result is None:
        return None
    usage = outcome.result.usage
    return Observation(
        tokens=outcome.tokens,
        answer=extract_answer(outcome.result.text, whole_text_fallback=True),
        logprob=outcome.result.logprob,
        alternatives=outcome.result.alternatives,
        probe_tokens=usage.completion_tokens,
        hedged=outcome.marks.hedged,
        probe_prompt_tokens=usage.prompt_tokens,
        probe_cached_tokens=usage.cached_prompt_tokens,
        cue=outcome.marks.cue,
        repetition=outcome.marks.repetition,
    )


_WORD_CLOSERS = frozenset(".,;:!?)]}\"'")
_MAX_WORD = 48  # characters: a tail longer than this is no word, so it is not held back
# Tokens before the first possible halt at which holding back partial words begins: a word
# longer than this that straddles the first halt point may be cut inside (none seen).
_HOLD_LEAD = 16
_NEVER = 1 << 62  # tokens: a run that cannot halt


def _word_end(text: str) -> int:
    """Length of ``text`` before its last whitespace (0 when it has none).

    The whitespace goes with the word after it, as tokenizers with leading-space tokens
    (" 17") write it, so a dropped partial word takes its own space along.
    """
    for i in range(len(text) - 1, -1, -1):
        if text[i].isspace():
            return i
    return 0


def _coalesce(deltas: list[Delta]) -> list[Delta]:
    """Merge text neighbours of the same kind (fewer, larger chunks when the loop is
    behind); tool-call pieces stay apart."""
    if len(deltas) < 2:
        return deltas
    merged: list[Delta] = []
    for delta in deltas:
        last = merged[-1] if merged else None
        if last is not None and last.kind == delta.kind and delta.kind != "tool_call":
            logprobs = (last.logprobs or ()) + (delta.logprobs or ())
            merged[-1] = Delta(delta.kind, last.text + delta.text, logprobs=logprobs or None)
        else:
            merged.append(delta)
    return merged
