"""The learned policy: fitted, saved, loaded through the installed reader, and the same
live (one boundary at a time) as in the vectorised replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thinkstop.benchmarks.drift_traces import make_traces
from thinkstop.benchmarks.tune import fit_learned
from thinkstop.proxy.engine import weights
from thinkstop.scheduler import create_policy, replay_one
from thinkstop.scheduler.learned import FEATURES, LogisticModel, fit
from thinkstop.scheduler.sweep import TraceBatch, evaluate


def test_fit_recovers_a_separable_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(4000, len(FEATURES)))
    y = x[:, 0] + 0.5 * x[:, 3] > 0.9  # confidence and streak decide
    model = fit(x, y, l2=0.1)
    assert model.weights[0] > 2 and model.weights[3] > 1
    predicted = np.array([model.probability(row) >= 0.5 for row in x])
    assert (predicted == y).mean() > 0.95


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, list]:
    traces = make_traces(150, seed=11, chunk_tokens=32, calibration="poor")
    model = fit_learned(TraceBatch([t.as_live() for t in traces]), window=2)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(model.to_json(objective="accuracy")))
    weights.install()
    return path, traces


def test_a_saved_model_loads_by_spec_and_halts(saved: tuple[Path, list]) -> None:
    path, traces = saved
    policy = create_policy(f"learned:weights={path},threshold=0.8")
    assert policy.spec().startswith("learned:")
    out = replay_one(traces[0].as_live(), policy)
    assert out.halted and out.reason == "learned"
    assert LogisticModel.from_json(json.loads(path.read_text())).window == 2


def test_the_vectorised_learned_rule_equals_the_live_one(saved: tuple[Path, list]) -> None:
    path, traces = saved
    live = [t.as_live() for t in traces]
    for threshold in (0.5, 0.8, 0.95):
        spec = f"learned:weights={path},threshold={threshold}"
        fast = evaluate(TraceBatch(live), spec)
        slow = [replay_one(t, create_policy(spec)) for t in live]
        assert list(fast.tokens) == [o.tokens for o in slow]
        assert list(fast.correct) == [o.correct for o in slow]


def test_bad_weights_are_clear_errors(tmp_path: Path) -> None:
    from thinkstop.scheduler import PolicySpecError

    weights.install()
    with pytest.raises(PolicySpecError, match="weights=PATH is required"):
        create_policy("learned")
    with pytest.raises(PolicySpecError, match="cannot use weights"):
        create_policy(f"learned:weights={tmp_path / 'missing.json'}")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(PolicySpecError, match=r"not thinkstop\.learned/1"):
        create_policy(f"learned:weights={bad}")
