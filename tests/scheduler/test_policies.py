from hypothesis import given
from hypothesis import strategies as st

from tests.scheduler.strategies import specs, traces
from thinkstop.scheduler.answers import normalize_answer
from thinkstop.scheduler.policies import ConsistencyPolicy, PlateauPolicy, SequentialPolicy
from thinkstop.scheduler.policy import Guarded, GuardRails
from thinkstop.scheduler.registry import create_policy, parse_spec
from thinkstop.scheduler.replay import replay_one
from thinkstop.scheduler.signals import Observation
from thinkstop.scheduler.trace import Trace


@given(traces(), specs())
def test_guard_rails_hold_in_replay(trace: Trace, spec: str) -> None:
    policy = create_policy(spec)
    out = replay_one(trace, create_policy(spec))
    rails = policy.rails
    if rails.max_tokens is not None:
        assert out.tokens <= rails.max_tokens
    if out.reason not in {"natural", "max_tokens"}:
        assert out.tokens >= rails.min_tokens
    if rails.max_probes is not None:
        assert out.probes <= rails.max_probes


@given(traces(), specs())
def test_guard_rails_hold_live(trace: Trace, spec: str) -> None:
    """Feeding boundaries one at a time, as the proxy does: the run stops where the
    guard-rails say, and exactly where replay says it stops."""
    policy = create_policy(spec)
    rails = policy.rails
    stop: tuple[int, str | None, bool] | None = None  # (tokens, answer, halted by policy)
    for step in trace.steps:
        if not policy.wants_probe(step.tokens):
            break
        decision = policy.observe(step)  # a recorded step is the observation itself
        if decision.halt:
            stop = (step.tokens, step.answer, decision.reason != "max_tokens")
            break
    if stop is not None:
        tokens, answer, by_policy = stop
        if by_policy:
            assert tokens >= rails.min_tokens
        if rails.max_tokens is not None:
            assert tokens <= rails.max_tokens
        out = replay_one(trace, create_policy(spec))
        assert (out.halted, out.tokens, out.answer) == (True, tokens, answer)
    if rails.max_probes is not None:
        assert policy.probes <= rails.max_probes


@given(traces(), st.integers(0, 4000))
def test_fixed_semantics_exactly(trace: Trace, budget: int) -> None:
    out = replay_one(trace, create_policy(f"fixed:budget={budget}"))
    assert out.probe_tokens == 0 and out.probes == 0
    if trace.natural.tokens <= budget:
        assert (out.answer, out.tokens) == (trace.natural.answer, trace.natural.tokens)
        return
    within = [s for s in trace.steps if s.tokens <= budget]
    if within:
        assert (out.answer, out.tokens) == (within[-1].answer, within[-1].tokens)
    else:
        assert out.answer is None and out.tokens == budget


@given(traces(), st.integers(1, 5))
def test_consistency_never_halts_while_window_differs(trace: Trace, window: int) -> None:
    policy = ConsistencyPolicy(window=window)
    seen: list[str | None] = []
    for step in trace.steps:
        decision = policy.observe(Observation(tokens=step.tokens, answer=step.answer,
                                              hedged=step.hedged))
        seen.append(normalize_answer(step.answer))
        if decision.halt:
            recent = seen[-window:]
            assert len(recent) == window
            assert len(set(recent)) == 1 and recent[0] is not None
            break


def test_consistency_waits_out_hedging() -> None:
    policy = ConsistencyPolicy(window=2)
    assert not policy.observe(Observation(tokens=1, answer="2")).halt
    assert not policy.observe(Observation(tokens=2, answer="2", hedged=True)).halt
    assert not policy.observe(Observation(tokens=3, answer="2")).halt
    assert policy.observe(Observation(tokens=4, answer="2")).halt


def test_plateau_needs_stability_and_confidence() -> None:
    policy = PlateauPolicy(window=2, epsilon=0.05, min_confidence=0.8)
    reasons = [policy.observe(Observation(tokens=i, answer="2", logprob=lp)).reason
               for i, lp in enumerate([-0.5, -0.1, -0.1, -0.1], start=1)]
    assert reasons == ["changing", "changing", "changing", "plateau"]
    low = PlateauPolicy(window=1, epsilon=0.5, min_confidence=0.95)
    low.observe(Observation(tokens=1, answer="2", logprob=-0.2))
    assert low.observe(Observation(tokens=2, answer="2", logprob=-0.2)).reason == "low_confidence"


def _first_halt(policy: SequentialPolicy, answers: list[str]) -> int | None:
    for i, answer in enumerate(answers):
        if policy.observe(Observation(tokens=i + 1, answer=answer)).halt:
            return i
    return None


def test_sequential_test_thresholds_and_change_of_mind() -> None:
    # log(1/0.05) = 3.00 needs six repeats of log(0.9/0.5) = 0.588; the first probe has
    # nothing to repeat, so the seventh probe is the first halt.
    assert _first_halt(SequentialPolicy(), ["2"] * 10) == 6
    # Five repeats (2.94), one change of mind (-1.61 -> 1.33), then three repeats (3.09).
    assert _first_halt(SequentialPolicy(), ["2"] * 6 + ["3"] * 6) == 9
    # A model that keeps flipping never builds evidence.
    assert _first_halt(SequentialPolicy(), ["2", "3"] * 10) is None
    assert _first_halt(SequentialPolicy(alpha=0.5), ["2"] * 3) == 2


def test_guarded_counts_probes_and_stops_observing() -> None:
    guarded = Guarded(PlateauPolicy(), GuardRails(max_probes=2))
    assert guarded.wants_probe(10)
    guarded.observe(Observation(tokens=10, answer="2"))
    guarded.observe(Observation(tokens=20, answer="2"))
    assert not guarded.wants_probe(30)
    assert guarded.observe(Observation(tokens=30, answer="2")).reason == "max_probes"


def test_fixed_never_probes() -> None:
    policy = create_policy("fixed:budget=100")
    assert not policy.needs_probes and not policy.wants_probe(0)
    assert policy.max_tokens == 100 and policy.over_budget(100) and not policy.over_budget(99)


def test_spec_round_trip() -> None:
    spec = parse_spec("plateau:window=3,epsilon=0.05,min_confidence=0.8,max_tokens=900")
    assert spec.params == {"window": 3, "epsilon": 0.05, "min_confidence": 0.8}
    assert spec.rails == {"max_tokens": 900}
    assert str(spec) == "plateau:window=3,epsilon=0.05,min_confidence=0.8,max_tokens=900"
