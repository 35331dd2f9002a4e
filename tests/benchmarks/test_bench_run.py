"""End to end: ``thinkstop bench run`` through the real OpenAI-compatible adapter against
the scripted fake reasoning server on loopback, then ``bench report`` and a resumed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import bench_main
from tests.fakes import VOCABULARY, FakeReasoningServer, Script, words

# The fake tells probes from main calls by finding its reasoning in the prompt, so the
# reasoning must not start with a word the task prompts contain.
REASONING = words(120, (" basket", *[w for w in VOCABULARY if w != " basket"]))
SCRIPT = Script(
    reasoning=REASONING,
    answer=[" The", " answer", " is", " <answer>5</answer>", "."],
    probe_answers=[(0, "7"), (40, "2"), (100, "5")],
    token_delay=0.0005,
)




def _rows(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    return {r["key"]: r for r in rows}


@pytest.fixture(scope="module")
def fake():
    with FakeReasoningServer(SCRIPT) as server:
        yield server


def _run(fake: FakeReasoningServer, out: Path, *extra: str) -> int:
    return bench_main(
        [
            "bench",
            "run",
            "--model",
            "openai/fake",
            "--api-base",
            fake.base_url,
            "--api-key",
            "k",
            "--tasks",
            "misleading_math",
            "--n",
            "4",
            "--budgets",
            "0,32,64,128",
            "--policies",
            "consistency:window=3",
            "--samples",
            "2",
            "--chunk-tokens",
            "16",
            "--max-reasoning",
            "1000",
            "--concurrency",
            "4",
            "--retries",
            "0",
            "--no-progress",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_bench_run_writes_files_and_numbers(fake, tmp_path):
    out = tmp_path / "run"
    assert _run(fake, out) == 0
    for name in (
        "items.jsonl",
        "traces.jsonl",
        "summary.json",
        "report.md",
        "run.json",
        "plots/misleading_math.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "plots/misleading_math.png").read_bytes()[:4] == b"\x89PNG"

    rows = _rows(out)
    # 4 items x (4 requested + 4 truncate + 1 policy + 2 natural samples)
    assert len(rows) == 4 * 11
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4 and {t["format"] for t in traces} == {"thinkstop.trace/1"}
    trace = traces[0]
    assert [s["tokens"] for s in trace["steps"]] == [0, 16, 32, 48, 64, 80, 96, 112]
    assert [s["answer"] for s in trace["steps"][1:]] == ["7", "7", "2", "2", "2", "2", "5"]
    assert trace["natural"] == {"tokens": 120, "answer": "5"}

    item = "misleading_math-00000"
    truncate = {b: rows[f"{item}|truncate|{b}|0"] for b in (32, 64, 128)}
    assert [(r["answer"], r["reasoning_tokens"], r["correct"]) for r in truncate.values()] == [
        ("7", 32, False),
        ("2", 64, True),
        ("5", 120, False),
    ]
    policy = rows[f"{item}|policy|consistency:window=3|0"]
    # Answers 7, 7, 2, 2, 2 at 16..80: three equal answers first at 80.
    assert (policy["answer"], policy["reasoning_tokens"], policy["correct"]) == ("2", 80, True)
    probe_cost = sum(s["probe_tokens"] for s in trace["steps"][1:6])
    assert policy["probe_tokens"] == probe_cost > 0
    for sample in (0, 1):
        natural = rows[f"{item}|natural||{sample}"]
        assert (natural["answer"], natural["reasoning_tokens"]) == ("5", 120)
    assert f"{item}|requested|1024|0" not in rows  # only the budgets asked for
    assert rows[f"{item}|requested|64|0"]["answer"] == "5"

    summary = json.loads((out / "summary.json").read_text())
    group = summary["tasks"]["misleading_math"]["levels"]["all"]
    points = {p["setting"]: p for p in group["regimes"]["truncate"]["points"]}
    # 4 of 4 right: Wilson's 95% interval is [0.51, 1], not a zero-width certainty
    score = points["64"]["score"]
    assert (score["n"], score["mean"], score["high"]) == (4, 1.0, 1.0)
    assert score["low"] == pytest.approx(0.5101, abs=1e-4)
    assert points["128"]["score"]["mean"] == 0.0 and points["128"]["reasoning_tokens"] == 120
    assert group["regimes"]["requested"]["trend"] == "flat"
    assert group["regimes"]["natural"]["samples"] == 2
    plateau = group["policies"][0]
    assert plateau["score"]["mean"] == 1.0
    saving = plateau["vs_truncate"]
    assert saving["reference"] == "64"
    assert saving["saved_tokens"] == pytest.approx(64 - 80 - plateau["probe_tokens"])
    assert set(summary["tasks"]["misleading_math"]["levels"]) == {"all", "1", "2", "3", "4"}
    report = (out / "report.md").read_text()
    assert "## misleading_math" in report and "consistency:window=3" in report

    # A second run finds everything done and calls nothing.
    before = fake.stats.main_streams
    assert _run(fake, out) == 0
    assert fake.stats.main_streams == before
    assert _rows(out) == rows

    # `bench report` rebuilds the same summary from the files.
    (out / "summary.json").unlink()
    assert bench_main(["bench", "report", str(out), "--no-plots"]) == 0
    assert json.loads((out / "summary.json").read_text()) == summary


def test_interrupted_run_resumes_without_losing_rows(fake, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(fake, out, "--regimes", "truncate,policies", "--no-plots") == 0
    complete = _rows(out)
    lines = (out / "items.jsonl").read_text().splitlines(keepends=True)
    traces = (out / "traces.jsonl").read_text().splitlines(keepends=True)
    # Simulate a crash: the last trace's rows never written, a half-written trace line.
    last = json.loads(traces[-1])["id"]
    kept = [line for line in lines if json.loads(line)["id"] != last]
    (out / "items.jsonl").write_text("".join(kept) + '{"key": "trunc')
    (out / "traces.jsonl").write_text("".join(traces[:-1]) + traces[-1][:40])
    capsys.readouterr()
    assert _run(fake, out, "--regimes", "truncate,policies", "--no-plots") == 0
    # Only the lost trace is recorded again.
    assert "1 calls done, 3 already done, 0 failed" in capsys.readouterr().err
    assert set(_rows(out)) == set(complete)


def test_resume_refuses_other_settings(fake, tmp_path):
    out = tmp_path / "run"
    assert _run(fake, out, "--regimes", "truncate", "--n", "1", "--no-plots") == 0
    assert _run(fake, out, "--regimes", "truncate", "--n", "1", "--seed", "9") == 2


def test_bench_sample_prints_items(capsys, data_dir):
    assert (
        bench_main(
            [
                "bench",
                "sample",
                "--task",
                "zebra_puzzles",
                "--n",
                "2",
                "--json",
                "--data-dir",
                str(data_dir),
            ]
        )
        == 0
    )
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["meta"]["grid_size"] for i in items] == [5, 6]
    assert items[0]["messages"][0]["role"] == "system"
    assert {"id", "task", "messages", "expected", "meta"} <= set(items[0])
    assert (
        bench_main(["bench", "sample", "--task", "famous_paradoxes", "--n", "1",
                    "--budget", "0"]) == 0
    )
    assert "Don't think" in capsys.readouterr().out


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``module`` look uninstalled to the pre-run checks (it cannot be uninstalled
    from under a test run)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))


def test_a_missing_plot_dependency_stops_the_run_before_it_starts(
    fake: FakeReasoningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _hide(monkeypatch, "matplotlib")
    out = tmp_path / "run"
    assert _run(fake, out) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (out / "items.jsonl").exists()  # nothing was run, so nothing is lost


def test_a_missing_embedded_engine_stops_the_run_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _hide(monkeypatch, "xllamacpp")
    code = bench_main(["bench", "run", "--model", "local/qwen2.5-coder-1.5b", "--tasks",
                  "misleading_math", "--n", "1", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "pip install 'thinkstop[local]'" in capsys.readouterr().err


def test_requested_runs_send_the_papers_limits_and_the_empty_think_block(fake, tmp_path):
    from thinkstop.benchmarks.prompts import EMPTY_THINK

    fake.reset(SCRIPT)
    out = tmp_path / "run"
    assert _run(fake, out, "--regimes", "requested", "--n", "1", "--budgets", "0,64",
                "--no-plots") == 0
    mains = {len(r.body["messages"]): r.body for r in fake.stats.of_kind("main")}
    zero = next(b for b in mains.values() if b["messages"][-1]["role"] == "assistant")
    assert zero["messages"][-1]["content"] == EMPTY_THINK
    assert zero["continue_final_message"] is True and zero["add_generation_prompt"] is False
    assert zero["max_tokens"] == 16384  # budget 0 + 16,384
    other = next(b for b in mains.values() if b["messages"][-1]["role"] == "user")
    assert other["max_tokens"] == 64 + 16384
    assert "continue_final_message" not in other
