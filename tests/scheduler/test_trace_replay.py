import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.scheduler.strategies import specs, traces
from thinkstop.scheduler.registry import create_policy
from thinkstop.scheduler.replay import natural_outcomes, replay, replay_one
from thinkstop.scheduler.sweep import TraceBatch, evaluate, natural_outcome
from thinkstop.scheduler.trace import TRACE_FORMAT, Trace, TraceError, parse_trace, parse_traces

REPO = Path(__file__).resolve().parents[2]


def _line(**overrides: object) -> str:
    base: dict[str, object] = {
        "format": TRACE_FORMAT, "id": "a", "task": "t", "expected": "2", "chunk_tokens": 64,
        "steps": [{"tokens": 64, "answer": "3", "logprob": -0.1, "alternatives": None,
                   "probe_tokens": 5},
                  {"tokens": 128, "answer": "2", "logprob": -0.2, "alternatives": {"2": -0.2},
                   "probe_tokens": 6}],
        "natural": {"tokens": 300, "answer": "3"},
    }
    base.update(overrides)
    return json.dumps(base)


def test_round_trip() -> None:
    trace = parse_trace(_line())
    assert parse_trace(trace.dumps()) == trace


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 3: invalid JSON"),
        ("[1, 2]", "line 3: a trace must be a JSON object"),
        (_line(format="thinkstop.trace/9"), "format must be 'thinkstop.trace/1'"),
        (_line(steps=[{"tokens": 64}, {"tokens": 64}]), "steps must ascend"),
        (_line(steps=[{"answer": "2"}]), "steps[0].tokens is missing"),
        (_line(steps=[{"tokens": -1}]), "steps[0].tokens must be an integer >= 0"),
        (_line(steps=[{"tokens": 9, "logprob": "x"}]), "steps[0].logprob must be a number"),
        (_line(natural={"tokens": 100, "answer": "2"}), "lies past the natural end"),
        (_line(natural=5), "natural must be an object"),
    ],
)
def test_malformed_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(TraceError) as info:
        list(parse_traces([_line(), "", line]))
    assert message in str(info.value)


def test_replay_semantics_on_a_known_trace() -> None:
    trace = parse_trace(_line())
    assert replay_one(trace, create_policy("fixed:budget=100")).answer == "3"
    assert replay_one(trace, create_policy("fixed:budget=128")).correct
    assert replay_one(trace, create_policy("fixed:budget=300")).answer == "3"  # natural
    none = replay_one(trace, create_policy("fixed:budget=10"))
    assert none.answer is None and none.tokens == 10 and not none.correct
    out = replay_one(trace, create_policy("confidence:threshold=0.8"))
    assert (out.answer, out.tokens, out.probe_tokens, out.reason) == ("3", 64, 5, "confident")
    never = replay_one(trace, create_policy("consistency:window=5"))
    assert (never.answer, never.tokens, never.probe_tokens) == ("3", 300, 11)
    assert [o.tokens for o in natural_outcomes([trace])] == [300]


@settings(max_examples=60, deadline=None)
@given(st.lists(traces(), min_size=1, max_size=8), st.lists(specs(), min_size=1, max_size=4))
def test_vectorised_replay_equals_scalar(batch_traces: list[Trace], spec_list: list[str]) -> None:
    batch = TraceBatch(batch_traces)
    for spec in spec_list:
        fast = evaluate(batch, spec)
        slow = replay(batch_traces, spec)
        assert fast.correct.tolist() == [o.correct for o in slow], spec
        assert fast.tokens.tolist() == [o.tokens for o in slow], spec
        assert fast.probe_tokens.tolist() == [o.probe_tokens for o in slow], spec
        assert fast.halted.tolist() == [o.halted for o in slow], spec


def test_natural_batch_outcome() -> None:
    batch = TraceBatch([parse_trace(_line())])
    out = natural_outcome(batch)
    assert out.tokens.tolist() == [300] and not out.correct.any()
    assert np.array_equal(evaluate(batch, "fixed:budget=1000").tokens, out.tokens)


def test_committed_drift_set_shows_plateau_beating_fixed_budgets() -> None:
    """The README's claim, checked on the committed synthetic trace set."""
    path = REPO / "benchmarks" / "traces" / "drift.jsonl"
    batch = TraceBatch(list(parse_traces(path.read_text().splitlines())))
    fixed = [evaluate(batch, f"fixed:budget={b}") for b in (256, 512, 1024, 1536, 2048, 4096)]
    best = max(fixed, key=lambda o: o.accuracy)
    plateau = evaluate(batch, "plateau")
    assert plateau.accuracy > max(o.accuracy for o in fixed) + 0.2
    assert plateau.mean_tokens + plateau.mean_probe_tokens < 0.85 * best.mean_tokens


@settings(max_examples=25, deadline=None)
@given(st.lists(traces(), min_size=1, max_size=6), specs())
def test_scalar_feature_fallback_equals_replay(batch_traces: list[Trace], spec: str) -> None:
    """Batches with a huge answer vocabulary take the per-trace tracker path."""
    from thinkstop.scheduler import sweep

    original = sweep._MAX_COLUMNS
    sweep._MAX_COLUMNS = 0
    try:
        batch = TraceBatch(batch_traces)
    finally:
        sweep._MAX_COLUMNS = original
    assert not batch.dense
    fast = evaluate(batch, spec)
    slow = replay(batch_traces, spec)
    assert fast.tokens.tolist() == [o.tokens for o in slow]
    assert fast.correct.tolist() == [o.correct for o in slow]


def test_a_window_wider_than_every_trace_replays_the_same_vectorised() -> None:
    # Once a lag past the last step broke the vectorised features (found by hypothesis).
    from thinkstop.scheduler.sweep import TraceBatch, evaluate
    from thinkstop.scheduler.trace import Natural, Step, Trace

    trace = Trace(id="t", task="x", expected="2", chunk_tokens=64,
                  steps=(Step(tokens=64, answer="2"), Step(tokens=128, answer="2")),
                  natural=Natural(tokens=200, answer="3"))
    out = evaluate(TraceBatch([trace]), "consistency:window=5")
    scalar = replay_one(trace, create_policy("consistency:window=5"))
    assert (bool(out.correct[0]), int(out.tokens[0])) == (scalar.correct, scalar.tokens)
