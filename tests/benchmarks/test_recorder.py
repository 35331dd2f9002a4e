import asyncio

from thinkstop.benchmarks.recorder import RecordSettings, generate, record_trace
from thinkstop.proxy.upstreams.base import ChatRequest

REQUEST = ChatRequest(model="scripted", messages=[{"role": "user", "content": "q"}])


def test_trace_probes_every_boundary_and_the_natural_end(scripted):
    settings = RecordSettings(chunk_tokens=10, probe_until=40, max_reasoning=1000)
    trace, run = asyncio.run(
        record_trace(
            scripted, REQUEST, settings, item_id="i", task="t", expected="2", meta={"level": "1"}
        )
    )
    # each probe is recorded at its boundary; it read the reasoning up to the last whole
    # word (the fake's words carry their leading space, so the newest one is held back)
    assert [s.tokens for s in trace.steps] == [0, 10, 20, 30, 40]
    assert [s.answer for s in trace.steps] == ["7", "7", "2", "2", "2"]
    assert all(s.probe_tokens == 2 and s.logprob == -0.1 for s in trace.steps)
    assert trace.natural.tokens == 100 and trace.natural.answer == "5"
    assert trace.meta is not None and trace.meta["natural_capped"] is False
    assert run.answer_tokens > 0 and not run.capped
    assert scripted.probes == 5 and scripted.continuations == 0


def test_hedging_is_marked_on_the_chunk_that_hedged(scripted):
    scripted.hedge_at = 14
    settings = RecordSettings(chunk_tokens=10, probe_until=40, probe_at_zero=False)
    trace, _ = asyncio.run(
        record_trace(scripted, REQUEST, settings, item_id="i", task="t", expected="2")
    )
    assert [s.hedged for s in trace.steps] == [False, True, False, False]


def test_capped_run_is_closed_and_answered_by_the_continuation(scripted):
    settings = RecordSettings(chunk_tokens=10, probe_until=20, max_reasoning=30)
    run = asyncio.run(generate(scripted, REQUEST, settings))
    assert run.capped and run.reasoning_tokens == 29  # cut at 30, snapped to a whole word
    assert run.answer == "2"  # the continuation answers from 30 tokens of reasoning
    assert scripted.closed_early == 1 and scripted.continuations == 1
    assert run.probes == []  # generate() runs no probes
