import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkstop.scheduler.signals import (
    Observation,
    SignalTracker,
    find_hedges,
    is_hedging,
    js_divergence,
    normalise_alternatives,
    total_variation,
)


@pytest.mark.parametrize(
    "text",
    ["I know the answer", "this is not it", "above the threshold", "a notable knot", "snow",
     "waiting room", "nothing"],
)
def test_hedging_ignores_substrings(text: str) -> None:
    assert not is_hedging(text)


@pytest.mark.parametrize(
    "text", ["Wait, that is wrong", "hmm.", "Hmmm let me see", "No, it is 3", "but no",
             "Actually it is 2", "Let me double-check"],
)
def test_hedging_matches_words(text: str) -> None:
    assert is_hedging(text)


def test_find_hedges_lists_words() -> None:
    assert find_hedges("Wait. Hmm, no: I know") == ["wait", "hmm", "no"]


dists = st.dictionaries(st.sampled_from("abcde"), st.floats(0.01, 1.0), min_size=1).map(
    lambda d: {k: v / sum(d.values()) for k, v in d.items()}
)


@given(dists, dists)
def test_divergences_bounded_and_symmetric(p: dict[str, float], q: dict[str, float]) -> None:
    for f in (js_divergence, total_variation):
        assert 0.0 <= f(p, q) <= 1.0
        assert f(p, q) == pytest.approx(f(q, p))
        assert f(p, p) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_distributions_are_maximally_apart() -> None:
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert total_variation({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)


def test_alternatives_merge_by_key_and_keep_residual() -> None:
    dist = normalise_alternatives({"2": math.log(0.5), "two": math.log(0.2), "3": math.log(0.1)})
    assert dist["2"] == pytest.approx(0.7)
    assert dist["3"] == pytest.approx(0.1)
    assert dist["__other__"] == pytest.approx(0.2)


def test_confidence_from_logprob_over_all_tokens() -> None:
    tracker = SignalTracker(window=3)
    sig = tracker.update(Observation(tokens=64, answer="2", logprob=math.log(0.8)))
    assert sig.confidence == pytest.approx(0.8)
    assert sig.change == 1.0  # the first boundary has nothing to compare with


def test_confidence_without_logprobs_is_window_agreement() -> None:
    tracker = SignalTracker(window=3)
    values = [tracker.update(Observation(tokens=64 * i, answer=a)).confidence
              for i, a in enumerate(["2", "3", "2", "2"], start=1)]
    assert values == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])


def test_stable_answers_mean_no_change() -> None:
    tracker = SignalTracker(window=2)
    changes = [tracker.update(Observation(tokens=i, answer="two")).change for i in range(1, 5)]
    assert changes[-1] == pytest.approx(0.0)
    assert tracker.update(Observation(tokens=9, answer="3")).streak == 1


def test_missing_answer_has_zero_confidence() -> None:
    sig = SignalTracker().update(Observation(tokens=1, answer=None, logprob=-0.1))
    assert sig.confidence == 0.0
    assert sig.answer is None


def test_tracker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="window"):
        SignalTracker(window=0)
    with pytest.raises(ValueError, match="metric"):
        SignalTracker(metric="kl")


def test_alternatives_without_the_answer_get_it_back() -> None:
    """Top-token alternatives that leave out the sampled answer still describe answers."""
    tracker = SignalTracker(window=2)
    first = tracker.update(Observation(tokens=64, answer="2", logprob=math.log(0.9),
                                       alternatives={"3": math.log(0.05)}))
    assert first.distribution["2"] == pytest.approx(0.9)
    assert first.confidence == pytest.approx(0.9)
    moved = tracker.update(Observation(tokens=128, answer="3", logprob=math.log(0.9),
                                       alternatives={"2": math.log(0.05)}))
    assert moved.change > 0.5  # the answer flipped: the distributions are far apart
