"""``thinkstop tune``: cross-validated policy choice that generalises to traces it never
saw, on a badly and on a well calibrated synthetic model, and the command as users run it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli import THINKSTOP
from thinkstop.benchmarks.drift_traces import make_traces
from thinkstop.benchmarks.tune import default_grid, tune, with_budgets
from thinkstop.scheduler import DEFAULT_POLICY
from thinkstop.scheduler.sweep import TraceBatch, evaluate, natural_outcome


def held_out(spec: str, traces: list) -> tuple[float, float, float]:
    """(accuracy, mean reasoning + probe tokens, natural's mean tokens) on ``traces``."""
    batch = TraceBatch([t.as_live() for t in traces])
    out = evaluate(batch, spec)
    natural = natural_outcome(batch)
    return out.accuracy, out.mean_tokens + out.mean_probe_tokens, natural.mean_tokens


def test_a_badly_calibrated_model_gets_a_policy_that_halts_early_and_right() -> None:
    train = make_traces(300, seed=1, chunk_tokens=32, calibration="poor")
    test = make_traces(300, seed=2, chunk_tokens=32, calibration="poor")
    result = tune(train, objective="accuracy", folds=5, learned=False,
                  specs=with_budgets(default_grid(32), train))
    accuracy, tokens, natural_tokens = held_out(result.recommended, test)
    assert accuracy >= 0.95 and tokens <= 0.25 * natural_tokens, result.recommended
    # the default waits for a confidence these probabilities never reach: it runs to the
    # natural end, and to natural's (wrong) answers
    default_accuracy, default_tokens, _ = held_out(DEFAULT_POLICY, test)
    natural_accuracy = evaluate(TraceBatch(test), "fixed:budget=100000").accuracy
    assert default_tokens >= 0.95 * natural_tokens
    assert abs(default_accuracy - natural_accuracy) <= 0.02
    assert result.cv_score.mean >= 0.95  # and the cross-validated figure said so


def test_on_well_calibrated_traces_it_keeps_the_defaults_quality() -> None:
    train = make_traces(300, seed=3)
    test = make_traces(300, seed=4)
    result = tune(train, folds=5, learned=False)
    accuracy, _, _ = held_out(result.recommended, test)
    default_accuracy, _, _ = held_out(DEFAULT_POLICY, test)
    assert accuracy >= default_accuracy - 0.02


def test_agreement_needs_no_labels_and_accuracy_says_it_does() -> None:
    from dataclasses import replace

    traces = [replace(t, expected=None) for t in make_traces(60, seed=5)]
    result = tune(traces, objective="agreement", max_loss=0.05, folds=3, learned=False)
    assert result.natural_score.mean == 1.0  # the model agrees with itself
    assert result.cv_score.mean >= 0.8
    with pytest.raises(ValueError, match="needs labelled traces"):
        tune(traces, objective="accuracy", folds=3)


def test_the_command_prints_the_block_writes_json_a_plot_and_learned_weights(
    tmp_path: Path,
) -> None:
    path = tmp_path / "poor.jsonl"
    path.write_text("".join(t.dumps() + "\n" for t in
                            make_traces(120, seed=6, chunk_tokens=32, calibration="poor")))
    done = subprocess.run([*THINKSTOP, "tune", str(path), "--folds", "3"], capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "recommended: " in done.stdout and "thinkstop:\n  policy: " in done.stdout
    assert "cross-validated (held-out folds)" in done.stdout
    weights = tmp_path / "w.json"
    plot = tmp_path / "f.png"
    done = subprocess.run([*THINKSTOP, "tune", str(path), "--folds", "3", "--json", "--plot",
                           str(plot), "--weights-out", str(weights)], capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {"recommended", "frontier", "baselines", "natural"}
    assert data["recommended"]["policy"] and data["frontier"]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    if data["recommended"]["policy"].startswith("learned:"):
        # the weights file it wrote is what the spec names, and replay reads it
        assert weights.is_file()
        replayed = subprocess.run([*THINKSTOP, "replay", str(path), "--policy",
                                   data["recommended"]["policy"]], capture_output=True,
                                  text=True, check=False, timeout=120)
        assert replayed.returncode == 0, replayed.stderr


def test_a_bad_trace_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "thinkstop.trace/1"}\n')
    done = subprocess.run([*THINKSTOP, "tune", str(bad)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 2 and "bad.jsonl: line 1" in done.stderr
    assert "Traceback" not in done.stderr


def _as_task(traces: list, task: str) -> list:
    from dataclasses import replace

    return [replace(t, id=f"{task}-{t.id}", task=task) for t in traces]


def _late_right(n: int) -> list:
    """A task where the early answer is a confident wrong one and thinking fixes it late:
    any policy that halts early fails here, while the drifting task wants halting early."""
    import random

    from thinkstop.scheduler.trace import Natural, Step, Trace

    rng = random.Random(10)
    out = []
    for i in range(n):
        fix = rng.randint(18, 26) * 32
        steps = tuple(Step(tokens=k, answer="7" if k < fix else "3",
                           logprob=-rng.uniform(0.01, 0.1), probe_tokens=4)
                      for k in range(32, 1025, 32))
        out.append(Trace(id=f"late-{i}", task="late", expected="3", chunk_tokens=32,
                         steps=steps, natural=Natural(1040, "3")))
    return out


def test_by_task_recommends_per_task_only_where_the_tasks_differ(tmp_path: Path) -> None:
    # two processes that want opposite policies, and two tasks drawn from one process
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(t.dumps() + "\n" for t in
                             _as_task(make_traces(80, seed=7, chunk_tokens=32,
                                                  calibration="poor"), "poor")
                             + _late_right(80)))
    same = tmp_path / "same.jsonl"
    one = make_traces(160, seed=9, chunk_tokens=32)
    same.write_text("".join(t.dumps() + "\n" for t in
                            _as_task(one[:80], "a") + _as_task(one[80:], "b")))

    def groups(path: Path) -> dict:
        done = subprocess.run([*THINKSTOP, "tune", str(path), "--folds", "4", "--by", "task",
                               "--no-learned", "--json"], capture_output=True, text=True,
                              check=False, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["groups"]

    differ = groups(mixed)
    assert set(differ) == {"poor", "late"}
    assert any(g["vs_shared"]["differs"] for g in differ.values())
    for g in differ.values():
        # each group reports the untuned default and the shared rule held out, and the
        # paired gain is the own rule's held-out score minus the shared rule's
        assert g["default"]["spec"] == DEFAULT_POLICY and g["shared"]["score"]["n"] == 80
        gain = g["cv_score"]["mean"] - g["shared"]["score"]["mean"]
        assert abs(gain - g["vs_shared"]["score_gain"]["mean"]) < 1e-5
    alike = groups(same)
    assert set(alike) == {"a", "b"}
    assert not any(g["vs_shared"]["differs"] for g in alike.values()), alike
