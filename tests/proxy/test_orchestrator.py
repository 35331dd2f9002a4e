"""The halting loop on an in-process upstream: timing, bounds, failures, closing."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncGenerator

import pytest

from tests.fakes import Script, words
from tests.fakes.memory_upstream import MemoryUpstream
from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.observe.request_log import make_logger
from thinkstop.proxy.upstreams.base import ChatRequest, ProbeResult, StreamEvent, UpstreamError
from thinkstop.scheduler import Decision, GuardRails, Observation, create_policy

REQUEST = ChatRequest("memory/model", [{"role": "user", "content": "q"}])


async def run(upstream: MemoryUpstream, spec: str = "plateau", *, rails: GuardRails | None = None,
              **options: object) -> HaltingRun:
    opts = RunOptions(**{"chunk_tokens": 10, "continuation": "reask", **options})  # type: ignore[arg-type]
    halting = HaltingRun(upstream, REQUEST, create_policy(spec, rails), opts)
    await halting.start()
    return halting


async def test_slow_probes_never_hold_up_the_stream() -> None:
    # Probes that would take an hour: the stream must end anyway, with none answered.
    upstream = MemoryUpstream(Script(reasoning=words(200), probe_delay=3600.0))
    halting = await run(upstream, probe_concurrency=2, drain_timeout=0.05,
                        probe_timeout=3600.0)
    # (a deadlock guard, not a speed target: a stream that waited would never end)
    _, answer = await asyncio.wait_for(halting.collect(), 60)
    assert upstream.completed and answer == "The answer is 42."
    assert halting.result.probes_observed == 0  # nothing came back, and nothing waited
    assert upstream.max_probes_in_flight == 2  # bounded
    assert halting.result.probes_skipped > 0
    assert upstream.probes_cancelled == 2  # drained, then cancelled
    assert halting.result.reason == "natural"


async def test_failing_probes_are_skipped_and_logged() -> None:
    stream = io.StringIO()
    upstream = MemoryUpstream(Script(reasoning=words(60), fail_probes=500))
    halting = HaltingRun(upstream, REQUEST, create_policy("plateau"),
                         RunOptions(chunk_tokens=10), log=make_logger("info", stream))
    await halting.start()
    _, answer = await halting.collect()
    assert answer == "The answer is 42."
    assert halting.result.probes_failed == halting.result.probes > 0
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events.count("probe_failed") == halting.result.probes_failed


async def test_halt_closes_the_stream_and_continues_from_the_reasoning() -> None:
    upstream = MemoryUpstream(Script.overthinking(total=2000, settle_at=20, token_delay=0.001))
    halting = await run(upstream)
    reasoning, answer = await halting.collect()
    assert upstream.closed and not upstream.completed
    assert upstream.sent < 200
    assert upstream.continuation_reasoning == reasoning
    assert upstream.continuation_closed
    assert answer.strip() == "Final answer: 42."
    assert halting.result.halted and halting.result.upstream_closed_early


async def test_budget_cut_needs_no_probes() -> None:
    upstream = MemoryUpstream(Script(reasoning=words(500)))
    halting = await run(upstream, "fixed:budget=30")
    await halting.collect()
    assert upstream.probe_calls == 0
    result = halting.result
    assert result.reason == "max_tokens"
    assert result.reasoning_tokens + result.cut_snapped_tokens >= 30
    assert upstream.closed and not upstream.completed


@pytest.mark.parametrize("continuation", ["reask", None])
async def test_error_mid_stream_answers_or_raises_and_closes(continuation: str | None) -> None:
    upstream = MemoryUpstream(Script(reasoning=words(100), probe_delay=1.0), fail_mid_stream_at=25)
    halting = await run(upstream, continuation=continuation)
    if continuation is None:  # nothing can answer from the reasoning: the error surfaces
        with pytest.raises(UpstreamError):
            await halting.collect()
    else:  # a forced answer from the 25 tokens of reasoning so far
        reasoning, answer = await halting.collect()
        assert upstream.continuation_reasoning == reasoning
        assert answer.strip() == "Final answer: 42."
        assert halting.result.reason == "upstream_error"
        assert halting.result.faults == ["main_stream_failed"]
    await halting.aclose()
    assert upstream.closed
    assert upstream.probes_in_flight == 0


async def test_aclose_mid_stream_cancels_everything() -> None:
    upstream = MemoryUpstream(Script(reasoning=words(5000), token_delay=0.001, probe_delay=5.0))
    halting = await run(upstream)
    events = halting.events()
    async for _ in events:
        if upstream.probes_in_flight:
            break
    await events.aclose()
    await halting.aclose()
    await asyncio.sleep(0)
    assert upstream.closed and not upstream.completed
    assert upstream.probes_in_flight == 0 and upstream.probes_cancelled >= 1


async def test_hidden_reasoning_sets_budget_and_never_probes() -> None:
    upstream = MemoryUpstream(Script(reasoning=words(50)), hides_reasoning=True)
    halting = await run(upstream, rails=GuardRails(max_tokens=20))
    await halting.collect()
    assert upstream.probe_calls == 0 and upstream.completed  # no cut: it is hidden
    assert halting.result.reason == "hidden_reasoning"
    assert halting._main_request().params["max_completion_tokens"] == 20 + 4096


async def test_probe_results_are_observed_in_boundary_order() -> None:
    class OutOfOrder(MemoryUpstream):
        async def probe(self, request: ChatRequest, reasoning: str,
                        max_tokens: int) -> ProbeResult:
            # The first boundary's probe answers last.
            await asyncio.sleep(0.08 if len(reasoning) < 60 else 0.0)
            return await super().probe(request, reasoning, max_tokens)

    upstream = OutOfOrder(Script(reasoning=words(80), token_delay=0.003))
    policy = create_policy("consistency:window=99")
    seen: list[int] = []
    observe = policy.observe

    def recording(obs: Observation) -> Decision:
        seen.append(obs.tokens)
        return observe(obs)

    policy.observe = recording  # type: ignore[method-assign]
    halting = HaltingRun(upstream, REQUEST, policy, RunOptions(chunk_tokens=10,
                                                               probe_concurrency=8))
    await halting.start()
    await halting.collect()
    assert seen[:3] == [10, 20, 30]
    assert seen == sorted(seen)


class BurstUpstream(MemoryUpstream):
    """Delivers the whole reasoning in one burst, as a fast server's buffered socket does."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        try:
            for token in self.script.reasoning:
                yield StreamEvent("reasoning", token, tokens=1)
            yield StreamEvent("content", "42", tokens=1)
        finally:
            self.closed = True


@pytest.mark.parametrize("spec", ["fixed:budget=64", "plateau:max_tokens=64,min_tokens=64"])
async def test_max_tokens_holds_on_a_fast_upstream(spec: str) -> None:
    """Tokens queued behind the cut are counted as discarded, never used or streamed."""
    upstream = BurstUpstream(Script(reasoning=words(400)))
    halting = await run(upstream, spec)
    reasoning, _ = await halting.collect()
    result = halting.result
    assert result.halted and result.reason == "max_tokens"
    assert result.reasoning_tokens == 64
    assert upstream.count_tokens(reasoning) == 64
    assert upstream.count_tokens(upstream.continuation_reasoning or "") == 64
    used_and_discarded = result.usage().reasoning_tokens - result.probe_tokens
    assert used_and_discarded == 64 + result.main.discarded
    assert result.decision()["reasoning_tokens_discarded"] == result.main.discarded


async def test_probe_timeout_follows_an_upstream_that_knows_its_speed() -> None:
    """In-process models estimate their own probe time; a configured timeout wins."""

    class Estimating(MemoryUpstream):
        def __init__(self, script: Script, seconds: float) -> None:
            super().__init__(script)
            self.seconds = seconds
            self.asked: list[int] = []

        def probe_timeout(self, max_tokens: int) -> float:
            self.asked.append(max_tokens)
            return self.seconds

    slow = Script(reasoning=words(40), probe_delay=0.2, token_delay=0.02)
    generous = Estimating(slow, seconds=5.0)
    halting = await run(generous, "consistency:window=2", probe_tokens=7)
    await halting.collect()
    assert generous.asked and set(generous.asked) == {7}
    assert halting.result.probes_failed == 0 and halting.result.probes_observed > 0
    stingy = Estimating(slow, seconds=0.05)
    halting = await run(stingy, "consistency:window=2")
    await halting.collect()
    assert halting.result.probes_failed > 0  # the estimate was applied, and too short
    configured = Estimating(slow, seconds=0.05)
    halting = await run(configured, "consistency:window=2", probe_timeout=5.0)
    await halting.collect()
    assert not configured.asked and halting.result.probes_failed == 0


@pytest.mark.parametrize(("tokens", "seen", "snapped"), [
    # "17" arrives as "1" + "7": a cut after "1" must not hand the continuation "= 1"
    (["Total", " sheep", " =", " 1", "7", " now"], "Total sheep =", 1),
    (["Total", " sheep", " =", " 1.", "5", " now"], "Total sheep =", 1),
    # closing punctuation shows the last word was whole: nothing to drop
    (["I", " have", " two", " apples.", " Now"], "I have two apples.", 0),
])
async def test_a_halt_never_splits_a_word_or_a_number(
    tokens: list[str], seen: str, snapped: int
) -> None:
    upstream = MemoryUpstream(Script(reasoning=tokens, token_delay=0.01))
    halting = await run(upstream, "fixed:budget=4")
    reasoning, _ = await halting.collect()
    assert reasoning == seen  # what the client saw ...
    assert upstream.continuation_reasoning == seen  # ... is what the continuation read
    result = halting.result
    assert result.cut_snapped_tokens == snapped
    assert result.reasoning_tokens == 4 - snapped and result.main.discarded >= snapped


async def test_a_held_partial_word_is_released_when_the_thinking_ends() -> None:
    upstream = MemoryUpstream(Script(reasoning=["so", " 1", "7"], token_delay=0.0))
    halting = await run(upstream, "plateau")
    reasoning, answer = await halting.collect()
    assert reasoning == "so 17" and answer == "The answer is 42."
    assert halting.result.cut_snapped_tokens == 0


@pytest.mark.parametrize(("spec", "first"), [
    # The first possible halt is 64 tokens away: nothing to protect, nothing held.
    ("plateau", "Okay"),
    # A cut at 10 tokens: from the start, a word is held until the next one begins.
    ("fixed:budget=10", "Okay,"),
])
async def test_words_are_held_back_only_near_a_point_where_the_run_can_halt(
    spec: str, first: str
) -> None:
    """Holding a partial word delays every token by one, the first one too (time to first
    token), so it starts only a few tokens before the run's first possible halt."""
    upstream = MemoryUpstream(Script(reasoning=["Okay", ",", " so", " 1", "7", " now"],
                                     token_delay=0.01))
    halting = await run(upstream, spec, chunk_tokens=64)
    deltas = [d.text async for d in halting.events() if d.kind == "reasoning"]
    assert deltas[0] == first
    assert "".join(deltas) == "Okay, so 17 now"


async def test_a_soft_halt_falls_back_to_hard_where_the_upstream_cannot() -> None:
    upstream = MemoryUpstream(Script.overthinking(total=400, settle_at=20, token_delay=0.001))
    halting = await run(upstream, "consistency:window=2", halt="soft", grace_tokens=16)
    await halting.collect()
    result = halting.result
    assert result.halted and result.halt_mode == "hard"
    assert "soft_halt_unsupported" in result.faults
