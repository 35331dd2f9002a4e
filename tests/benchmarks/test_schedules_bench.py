"""The schedule comparison script: rows for every (schedule, policy), both billing
models, and a verdict against fixed that tracks what the traces hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from thinkstop.scheduler.trace import Natural, Step, Trace


def dense_trace(i: int, cue_every: int) -> Trace:
    """Probes every 32 tokens to 1,024; the answer wanders, then settles at 256; course
    changes every ``cue_every`` tokens; probe prompts grow with the reasoning, mostly
    cached."""
    steps = tuple(
        Step(tokens=k, answer="4" if k >= 256 else str(k // 32 + 4), logprob=-0.05, probe_tokens=4,
             probe_prompt_tokens=100 + k, probe_cached_tokens=90 + k - 32 if k > 32 else 0,
             cue=k % cue_every == 0)
        for k in range(32, 1025, 32))
    return Trace(id=str(i), task="t", expected="4", chunk_tokens=32, steps=steps,
                 natural=Natural(1040, "4"))


def test_sparse_schedules_cut_probe_cost_and_report_both_billing_models(tmp_path: Path) -> None:
    path = tmp_path / "dense.jsonl"
    path.write_text("".join(dense_trace(i, 128).dumps() + "\n" for i in range(20)))
    done = subprocess.run(
        [sys.executable, "-m", "thinkstop.benchmarks.perf.schedules", str(path), "--json",
         "--schedule", "transitions:min_gap=64,max_gap=512", "--policy", "consistency:window=2"],
        capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = {r["schedule"]: r for r in data["rows"]}
    fixed, sparse = rows["fixed"], rows["transitions:min_gap=64,max_gap=512"]
    assert fixed["probes_per_trace_recorded"] == 32
    assert sparse["probes_per_trace_recorded"] < 12
    for r in (fixed, sparse):
        assert r["cost_uncached"] > r["cost_cached"] > r["reasoning_tokens"]
    (verdict,) = data["vs_fixed"]
    assert verdict["probe_cost_cut_uncached"] > 0.5 and verdict["within_fixed_interval"]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "thinkstop.benchmarks.perf.schedules",
                           str(tmp_path / "nope.jsonl")], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 2 and "nope.jsonl" in done.stderr
    assert "Traceback" not in done.stderr
