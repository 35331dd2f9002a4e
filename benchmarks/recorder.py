"""Talking to a model through the :class:`~thinkstop.proxy.upstreams.base.Upstream` protocol.

Two operations, both adapter-agnostic (litellm, raw completion, the local model, or a
test double):

- :func:`generate`: one run to its end (a requested budget, a natural sample), with a cap
  on reasoning tokens; a capped run is closed and its answer written by the upstream's
  continuation strategy, as the proxy does after a halt.
- :func:`record_trace`: the same run with a probe at every chunk boundary (and at 0 when
  asked) up to ``probe_until`` tokens: a ``thinkstop.trace/1`` trace from which every
  truncation budget and every policy replays offline.

Probes run concurrently with the stream, as in the proxy; the stream never waits.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from thinkstop.scheduler.answers import extract_answer
from thinkstop.scheduler.signals import is_hedging
from thinkstop.scheduler.trace import Natural, Step, Trace

if TYPE_CHECKING:
    from thinkstop.proxy.upstreams.base import ChatRequest, Continuation, ProbeResult, Upstream


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """How traces and runs are recorded.

    ``chunk_tokens``: probe spacing. ``probe_until``: no probes past this many reasoning
    tokens (the largest truncation budget). ``max_reasoning``: reasoning is cut here and the
    answer forced (the run is marked ``capped``). ``probe_tokens``: a probe's answer limit.
    ``probe_at_zero``: also probe before any reasoning (truncation budget 0).
    """

    chunk_tokens: int = 256
    probe_until: int = 4096
    max_reasoning: int = 16384
    probe_tokens: int = 16
    probe_at_zero: bool = True

    def __post_init__(self) -> None:
        if self.chunk_tokens <= 0:
            raise ValueError("chunk_tokens must be > 0")
        if self.max_reasoning <= 0:
            raise ValueError("max_reasoning must be > 0")


@dataclass
class Generation:
    """One finished run: reasoning and answer text, their token counts, and its cost."""

    reasoning: str = ""
    reasoning_tokens: int = 0
    content: str = ""
    answer: str | None = None
    capped: bool = False
    answer_tokens: int = 0
    wall_s: float = 0.0
    probes: list[Step] = field(default_factory=list)


def _count(upstream: Upstream, text: str, exact: int | None) -> int:
    return exact if exact is not None else upstream.count_tokens(text)


def _continuation(upstream: Upstream) -> Continuation:
    options = upstream.capabilities.continuations
    return options[0] if options else "reask"


async def _probe_step(
    upstream: Upstream, request: ChatRequest, reasoning: str, tokens: int, limit: int, hedged: bool
) -> Step:
    result: ProbeResult = await upstream.probe(request, reasoning, limit)
    spent = result.usage.completion_tokens or upstream.count_tokens(result.text)
    return Step(
        tokens=tokens,
        answer=extract_answer(result.text, whole_text_fallback=True),
        logprob=result.logprob,
        alternatives=result.alternatives,
        probe_tokens=spent,
        hedged=hedged,
    )


async def generate(
    upstream: Upstream,
    request: ChatRequest,
    settings: RecordSettings,
    *,
    probe: bool = False,
    max_reasoning: int | None = None,
) -> Generation:
    """Run ``request`` to its end (or the reasoning cap); probe at boundaries if asked."""
    cap = max_reasoning if max_reasoning is not None else settings.max_reasoning
    # Hidden reasoning (OpenAI o-series) cannot be probed: only its length is known.
    probe = probe and not upstream.capabilities.hides_reasoning
    started = time.perf_counter()
    out = Generation()
    parts: list[str] = []
    content: list[str] = []
    tasks: list[asyncio.Task[Step]] = []
    chunk = settings.chunk_tokens
    next_boundary = 0 if settings.probe_at_zero else chunk
    since_last = ""
    usage_reasoning = 0
    usage_completion = 0

    def maybe_probe() -> None:
        nonlocal next_boundary, since_last
        while probe and next_boundary <= min(out.reasoning_tokens, settings.probe_until):
            hedged = is_hedging(since_last)
            tasks.append(
                asyncio.ensure_future(
                    _probe_step(
                        upstream,
                        request,
                        "".join(parts),
                        next_boundary,
                        settings.probe_tokens,
                        hedged,
                    )
                )
            )
            since_last = ""
            next_boundary += chunk

    maybe_probe()
    stream = upstream.stream(request)
    try:
        async for event in stream:
            if event.kind == "reasoning" and not content:
                parts.append(event.text)
                since_last += event.text
                out.reasoning_tokens += _count(upstream, event.text, event.tokens)
                maybe_probe()
                if out.reasoning_tokens >= cap:
                    out.capped = True
                    break
            elif event.kind in ("content", "reasoning"):
                content.append(event.text)
            elif event.kind == "usage" and event.usage is not None:
                usage_reasoning = event.usage.reasoning_tokens
                usage_completion = event.usage.completion_tokens
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    finally:
        await stream.aclose()
    try:
        if out.capped:
            answer_stream = upstream.continue_answer(
                request, "".join(parts), _continuation(upstream)
            )
            try:
                async for event in answer_stream:
                    if event.kind == "content":
                        content.append(event.text)
            finally:
                await answer_stream.aclose()
        out.probes = list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    out.reasoning = "".join(parts)
    if not parts and usage_reasoning:  # hidden reasoning: only the usage report counts it
        out.reasoning_tokens = usage_reasoning
    out.content = "".join(content)
    out.answer = extract_answer(out.content)
    counted = upstream.count_tokens(out.content) if out.content else 0
    out.answer_tokens = (
        max(0, usage_completion - out.reasoning_tokens)
        if (usage_completion and not out.capped)
        else counted
    )
    out.wall_s = time.perf_counter() - started
    return out


async def record_trace(
    upstream: Upstream,
    request: ChatRequest,
    settings: RecordSettings,
    *,
    item_id: str,
    task: str,
    expected: str,
    meta: dict[str, object] | None = None,
) -> tuple[Trace, Generation]:
    """One probed run as a ``thinkstop.trace/1`` trace (plus the run itself)."""
    run = await generate(upstream, request, settings, probe=True)
    steps = tuple(s for s in run.probes if s.tokens <= run.reasoning_tokens)
    trace = Trace(
        id=item_id,
        task=task,
        expected=expected,
        chunk_tokens=settings.chunk_tokens,
        steps=steps,
        natural=Natural(tokens=run.reasoning_tokens, answer=run.answer),
        meta={**(meta or {}), "natural_capped": run.capped, "wall_s": round(run.wall_s, 3)},
    )
    return trace, run
