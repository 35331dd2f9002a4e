"""Recorded traces and live runs come from one loop: replaying a policy on a recorded
trace predicts what the same policy does live on the same (deterministic) model.

The model is the scripted fake reasoning server, reached through the real OpenAI
adapter over loopback HTTP; the trace is recorded with the benchmark's recorder, the live
run is the proxy's own halting loop.
"""

from __future__ import annotations

import pytest

from tests.fakes import FakeReasoningServer, Script, words
from thinkstop.benchmarks.recorder import RecordSettings, record_trace
from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.upstreams.base import ChatRequest
from thinkstop.proxy.upstreams.openai_chat import OpenAIChatUpstream
from thinkstop.proxy.upstreams.providers import capabilities_for
from thinkstop.scheduler import create_policy, replay_one

# Right from 45 tokens on, wrong again from 150: settling early pays.
SCHEDULE = [(0, "7"), (45, "2"), (150, "5")]
REQUEST = ChatRequest("fake", [{"role": "user", "content": "How many fruits?"}])


@pytest.fixture
def fake():
    script = Script(reasoning=words(200), probe_answers=SCHEDULE, token_delay=0.004)
    with FakeReasoningServer(script) as server:
        yield server


@pytest.mark.parametrize("spec", ["consistency:window=2", "consistency:window=3",
                                  "fixed:budget=100"])
async def test_replay_of_a_recorded_trace_predicts_the_live_run(
    fake: FakeReasoningServer, spec: str
) -> None:
    upstream = OpenAIChatUpstream("fake", "fake", api_base=fake.base_url,
                                  capabilities=capabilities_for("openai/fake"))
    try:
        settings = RecordSettings(chunk_tokens=16, probe_until=400, max_reasoning=400)
        trace, _ = await record_trace(upstream, REQUEST, settings, item_id="i", task="t",
                                      expected="2")
        whole = trace if spec.startswith("fixed") else trace.as_live()
        predicted = replay_one(whole, create_policy(spec))
        live = HaltingRun(upstream, REQUEST, create_policy(spec),
                          RunOptions(chunk_tokens=16, continuation="reask"))
        await live.start()
        try:
            _, content = await live.collect()
        finally:
            await live.aclose()
    finally:
        await upstream.aclose()
    result = live.result
    assert result.halted == predicted.halted
    assert f"Final answer: {predicted.answer}." == content  # the model's own answer
    # live halts when the probe's verdict lands, a token or two after its boundary
    assert predicted.tokens <= result.reasoning_tokens + result.cut_snapped_tokens
    assert result.reasoning_tokens <= predicted.tokens + 4
    assert result.probes_observed == predicted.probes
