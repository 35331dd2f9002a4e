"""Running a benchmark item through the proxy's own halting loop.

Both operations are a :class:`~thinkstop.proxy.engine.run.HaltingRun`, the loop the
proxy runs for every request, so recorded traces and live runs cannot differ by
construction (one probe loop, not two):

- :func:`generate`: one run to its end (a requested budget, a natural sample), with a cap
  on reasoning tokens; a capped run is closed and its answer written by the upstream's
  continuation strategy, as the proxy does after a halt.
- :func:`record_trace`: the same run in shadow mode with a probe at every chunk boundary
  (and at 0 when asked) up to ``probe_until`` tokens: a ``thinkstop.trace/1`` trace from
  which every truncation budget and every policy replays offline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Final

from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.upstreams.base import ChatRequest, Upstream
from thinkstop.proxy.upstreams.providers import choose_continuation
from thinkstop.scheduler import DEFAULT_POLICY, Guarded, GuardRails, create_policy
from thinkstop.scheduler.answers import extract_answer
from thinkstop.scheduler.trace import Natural, Step, Trace

# Recording must not lose a boundary: no probe is skipped for being one too many in
# flight, and an in-process model's probes may queue for a while on a busy machine.
RECORD_CONCURRENCY: Final = 64
RECORD_TIMEOUT_S: Final = 600.0


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


async def _run(upstream: Upstream, request: ChatRequest, policy: Guarded,
               options: RunOptions) -> tuple[HaltingRun, str, str, float]:
    started = time.perf_counter()
    run = HaltingRun(upstream, request, policy, options)
    await run.start()
    try:
        reasoning, content = await run.collect()
    finally:
        await run.aclose()
    return run, reasoning, content, time.perf_counter() - started


def _generation(run: HaltingRun, reasoning: str, content: str, wall_s: float) -> Generation:
    result = run.result
    return Generation(
        reasoning=reasoning,
        reasoning_tokens=result.reasoning_tokens,
        content=content,
        answer=extract_answer(content),
        capped=result.halted and result.reason == "max_tokens",
        answer_tokens=result.answer_tokens,
        wall_s=wall_s,
        probes=list(run.observations),
    )


def _options(upstream: Upstream, settings: RecordSettings, **changes: object) -> RunOptions:
    return replace(
        RunOptions(),
        chunk_tokens=settings.chunk_tokens,
        probe_tokens=settings.probe_tokens,
        continuation=choose_continuation(upstream.capabilities),
        **changes,  # type: ignore[arg-type]
    )


async def generate(
    upstream: Upstream,
    request: ChatRequest,
    settings: RecordSettings,
    *,
    max_reasoning: int | None = None,
) -> Generation:
    """Run ``request`` to its end, or to the reasoning cap and then the continuation's
    answer, through the proxy's own halting loop with no probes."""
    cap = max_reasoning if max_reasoning is not None else settings.max_reasoning
    policy = create_policy("fixed", GuardRails(max_tokens=cap))
    return _generation(*await _run(upstream, request, policy, _options(upstream, settings)))


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
    """One probed run as a ``thinkstop.trace/1`` trace (plus the run itself).

    The run is the proxy's own halting loop in shadow mode: probes at every chunk
    boundary (and at 0 when asked) up to ``probe_until``, none skipped, the default policy
    deciding but never halting; only the ``max_reasoning`` cut ends a run early. So a
    trace is what the live proxy would have seen, probe for probe.
    """
    probes = settings.probe_until // settings.chunk_tokens + int(settings.probe_at_zero)
    policy = create_policy(DEFAULT_POLICY,
                           GuardRails(max_tokens=settings.max_reasoning, max_probes=probes))
    options = _options(upstream, settings, shadow=True, probe_at_start=settings.probe_at_zero,
                       probe_concurrency=RECORD_CONCURRENCY, probe_timeout=RECORD_TIMEOUT_S,
                       drain_timeout=RECORD_TIMEOUT_S)
    run = _generation(*await _run(upstream, request, policy, options))
    steps = tuple(s for s in sorted(run.probes, key=lambda s: s.tokens)
                  if s.tokens <= run.reasoning_tokens)
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
