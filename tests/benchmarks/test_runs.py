"""``--runs N``: independent runs of the controlled regimes, one trace per (item, run),
resumable, and readable next to folders written before runs existed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from thinkstop.benchmarks.config import BenchConfig
from thinkstop.benchmarks.runner import run_units
from thinkstop.benchmarks.summary import summarize


def _config(**kw):
    base = dict(
        model="openai/scripted",
        tasks=("misleading_math",),
        n=2,
        budgets=(0, 20, 80),
        policies=("consistency:window=2",),
        samples=1,
        runs=3,
        chunk_tokens=10,
        max_reasoning=1000,
        retries=0,
        regimes=("requested", "truncate", "policies"),
    )
    base.update(kw)
    return BenchConfig(**base)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]


def _traces(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]


def test_runs_record_one_trace_per_item_and_run(scripted, tmp_path):
    report = asyncio.run(run_units(_config(), scripted, tmp_path, progress=False))
    assert report.failed == 0
    traces = _traces(tmp_path)
    assert Counter((t["id"], t["meta"]["run"]) for t in traces) == {
        (f"misleading_math-0000{i}", r): 1 for i in range(2) for r in range(3)
    }
    rows = _rows(tmp_path)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys))  # no two runs share a key
    per_run = Counter((r["regime"], r["run"]) for r in rows)
    for run in range(3):
        assert per_run[("truncate", run)] == 2 * 3  # items x budgets
        assert per_run[("requested", run)] == 2 * 3
        assert per_run[("policy", run)] == 2
    # Run 0 keeps the key rows always had; later runs add their number.
    assert "misleading_math-00000|truncate|20|0" in keys
    assert "misleading_math-00000|truncate|20|0|2" in keys
    # One natural row per item (samples=1), from the first run's trace.
    assert Counter(r["run"] for r in rows if r["regime"] == "natural") == {0: 2}

    summary = summarize(rows)
    group = summary["tasks"]["misleading_math"]["levels"]["all"]
    for regime in ("truncate", "requested"):
        for point in group["regimes"][regime]["points"]:
            assert (point["n"], point["runs"], point["rows"]) == (2, 3, 6)
            assert len(point["run_scores"]) == 3
            assert "low" in point["score"] and "high" in point["score"]
    assert group["policies"][0]["runs"] == 3


def test_more_runs_resume_and_add_only_the_new_runs(scripted, tmp_path):
    asyncio.run(run_units(_config(runs=2), scripted, tmp_path, progress=False))
    streams = scripted.streams
    again = asyncio.run(run_units(_config(runs=2), scripted, tmp_path, progress=False))
    assert again.done == 0 and scripted.streams == streams
    more = asyncio.run(run_units(_config(runs=3), scripted, tmp_path, progress=False))
    # run 2 of 2 items: a trace and 3 requested budgets each
    assert more.done == 2 * (1 + 3) and more.skipped == 2 * 2 * (1 + 3)
    assert {t["meta"]["run"] for t in _traces(tmp_path)} == {0, 1, 2}


def test_natural_samples_reuse_the_traces_of_each_run(scripted, tmp_path):
    config = _config(runs=3, samples=5, regimes=("truncate", "natural"))
    asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    natural = [r for r in _rows(tmp_path) if r["regime"] == "natural"]
    # samples 0-2 from the three traces, 3-4 from two more natural runs
    assert sorted(r["sample"] for r in natural if r["id"].endswith("0")) == [0, 1, 2, 3, 4]
    assert len({r["key"] for r in natural}) == 10


def test_a_folder_written_before_runs_existed_resumes_as_run_zero(scripted, tmp_path):
    config = _config(runs=1, regimes=("truncate", "policies"))
    asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    # Make the folder look old: no run in rows, no run in trace meta.
    old_rows = [{k: v for k, v in r.items() if k != "run"} for r in _rows(tmp_path)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old_rows))
    old_traces = _traces(tmp_path)
    for trace in old_traces:
        trace["meta"].pop("run")
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in old_traces))
    saved = json.loads((tmp_path / "run.json").read_text())
    del saved["runs"]
    (tmp_path / "run.json").write_text(json.dumps(saved))

    streams = scripted.streams
    report = asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    assert report.done == 0 and scripted.streams == streams  # nothing is run twice
    assert len(_rows(tmp_path)) == len(old_rows)
    # Asking for a second run records only run 1.
    report = asyncio.run(run_units(_config(runs=2, regimes=("truncate", "policies")),
                                   scripted, tmp_path, progress=False))
    assert report.done == 2
    rows = _rows(tmp_path)
    assert Counter(r.get("run", 0) for r in rows if r["regime"] == "truncate") == {0: 6, 1: 6}
    point = summarize(rows)["tasks"]["misleading_math"]["levels"]["all"]["regimes"][
        "truncate"]["points"][0]
    assert point["runs"] == 2 and point["n"] == 2
