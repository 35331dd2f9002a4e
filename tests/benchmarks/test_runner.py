import asyncio
import json
import subprocess
import sys

from thinkstop.benchmarks.cli import split_policies
from thinkstop.benchmarks.config import BenchConfig
from thinkstop.benchmarks.runner import run_units
from thinkstop.benchmarks.tasks import load_items


def _config(**kw):
    base = dict(
        model="openai/scripted",
        tasks=("misleading_math",),
        n=2,
        budgets=(0, 20, 80),
        policies=("consistency:window=2",),
        samples=1,
        chunk_tokens=10,
        max_reasoning=1000,
        retries=2,
        backoff_s=0.001,
        regimes=("truncate", "policies"),
    )
    base.update(kw)
    return BenchConfig(**base)


def test_retries_with_backoff_then_success(scripted, tmp_path):
    scripted.fail_first = 2
    config = _config(n=1)
    report = asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    assert (report.done, report.failed) == (1, 0)
    assert scripted.streams == 3
    assert not (tmp_path / "errors.jsonl").exists()


def test_units_that_keep_failing_are_reported_and_retried_next_time(scripted, tmp_path):
    scripted.fail_first = 3
    config = _config(n=1, retries=1)
    report = asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    assert (report.done, report.failed) == (0, 1)
    error = json.loads((tmp_path / "errors.jsonl").read_text())
    assert error["key"].startswith("misleading_math-00000|trace")
    assert "ConnectionError" in error["error"]
    report = asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    assert (report.done, report.failed, report.skipped) == (1, 0, 0)


def test_replay_rows_match_the_scripted_model(scripted, tmp_path):
    config = _config()
    asyncio.run(run_units(config, scripted, tmp_path, progress=False))
    rows = {
        json.loads(line)["key"]: json.loads(line)
        for line in (tmp_path / "items.jsonl").read_text().splitlines()
    }
    key = "misleading_math-00000|{}|{}|0"
    assert rows[key.format("truncate", "0")]["answer"] == "7"
    assert rows[key.format("truncate", "20")]["answer"] == "2"
    assert rows[key.format("truncate", "80")]["answer"] == "5"  # probe at 80 (>= 60)
    # Policies see no probe at 0: answers at 10, 20, 30 are 7, 2, 2 -> halt at 30.
    policy = rows[key.format("policy", "consistency:window=2")]
    assert (policy["answer"], policy["reasoning_tokens"], policy["probe_tokens"]) == ("2", 30, 6)
    assert rows[key.format("natural", "")]["reasoning_tokens"] == 100


def test_live_runs_go_through_the_halting_loop(scripted, tmp_path):
    from thinkstop.benchmarks.live import live_runner
    from thinkstop.benchmarks.summary import summarize

    config = _config(n=1, live=True, policies=("fixed:budget=20",))
    items = load_items("misleading_math", 1, 0)
    report = asyncio.run(
        run_units(
            config,
            scripted,
            tmp_path,
            progress=False,
            live=live_runner(config, scripted),
            items=items,
        )
    )
    assert report.failed == 0
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    live = [r for r in rows if r["regime"] == "live"]
    assert len(live) == 1 and live[0]["halted"] and live[0]["reason"] == "max_tokens"
    # cut at 20, snapped back over its last (maybe partial) word
    assert live[0]["answer"] == "2" and live[0]["reasoning_tokens"] >= 19
    policy = summarize(rows)["tasks"]["misleading_math"]["levels"]["all"]["policies"][0]
    assert policy["live"]["n"] == 1 and policy["live"]["same_answer_rate"] == 1.0


def test_split_policies_keeps_spec_commas():
    assert split_policies(["plateau:window=3,epsilon=0.05,consistency", "fixed:budget=64"]) == [
        "plateau:window=3,epsilon=0.05",
        "consistency",
        "fixed:budget=64",
    ]


def test_cli_module_imports_stay_light():
    code = (
        "import sys, thinkstop.benchmarks.cli; "
        "heavy = [m for m in ('litellm', 'matplotlib', 'tqdm', "
        "'thinkstop.proxy.upstreams.registry') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
