"""The ``anchored`` regime: worked examples reach the model as few-shot turns (end to end
against the fake reasoning server), are scored apart and paired with natural thinking,
and every way it can be misconfigured stops the run before any call, with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import bench_main
from thinkstop.benchmarks.anchoring import AnchorsUnavailable, generated_anchors
from thinkstop.benchmarks.tasks import Options, load_items
from thinkstop.proxy.testing import VOCABULARY, FakeReasoningServer, Script, words

# As in test_gate: the reasoning must not start with a word the prompts contain.
REASONING = words(600, (" basket", *[w for w in VOCABULARY if w != " basket"]))
SCRIPT = Script(reasoning=REASONING, answer=[" The", " answer", " is", " <answer>6</answer>"],
                probe_answers=[(0, "5"), (200, "6")])




@pytest.fixture(scope="module")
def fake():
    with FakeReasoningServer(SCRIPT) as server:
        yield server


def _bench(fake: FakeReasoningServer, out: Path, *extra: str, task: str = "grades_regression"
           ) -> int:
    return bench_main([
        "bench", "run", "--model", "openai/fake", "--api-base", fake.base_url,
        "--api-key", "k", "--tasks", task, "--n", "3", "--samples", "1",
        "--budgets", "0,256", "--chunk-tokens", "128", "--max-reasoning", "512",
        "--regimes", "natural,anchored", "--concurrency", "2", "--retries", "0",
        "--no-progress", "--no-plots", "--out", str(out), *extra,
    ])


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]


def _mains(fake: FakeReasoningServer) -> list[dict]:
    """The thinking calls (the probe before any reasoning also reads as "main" to the
    fake, so it is told apart by its small token limit)."""
    return [r.body for r in fake.stats.of_kind("main") if r.body.get("max_tokens", 0) > 64]


def _examples_in(body: dict) -> list[dict]:
    """The few-shot turns of a request: the messages between the system prompt and the
    last user message."""
    messages = body["messages"]
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    return messages[1:-1]


def test_anchored_runs_send_the_examples_as_turns_and_pair_with_natural(fake, tmp_path):
    fake.reset(SCRIPT)
    out = tmp_path / "run"
    assert _bench(fake, out, "--anchors-max", "4") == 0
    mains = _mains(fake)
    with_turns = [b for b in mains if _examples_in(b)]
    without = [b for b in mains if not _examples_in(b)]
    assert len(with_turns) == 3 and len(without) == 3  # anchored, natural (the traces)
    for body in with_turns:
        turns = _examples_in(body)
        assert [t["role"] for t in turns] == ["user", "assistant"] * 4
        assert all(t["content"].startswith("<answer>") for t in turns[1::2])
        # examples are other students' zero-shot questions, never the item itself
        assert body["messages"][-1]["content"] not in {t["content"] for t in turns[::2]}
    questions = {t["content"] for b in with_turns for t in _examples_in(b)[::2]}
    probes = fake.stats.of_kind("probe")  # the natural traces' probes carry no examples
    assert probes and not any(m.get("content") in questions
                              for r in probes for m in r.body["messages"])

    rows = _rows(out)
    anchored = [r for r in rows if r["regime"] == "anchored"]
    assert len(anchored) == 3 and all(r["anchors"] == 4 for r in anchored)
    assert all(r["prediction"] == 6.0 for r in anchored)
    summary = json.loads((out / "summary.json").read_text())
    curve = summary["tasks"]["grades_regression"]["levels"]["all"]["regimes"]["anchored"]
    assert curve["points"][0]["setting"] == "4 examples"
    assert curve["vs_natural"]["n"] == 3
    assert "regression" in curve["points"][0]
    report = (out / "report.md").read_text()
    assert "anchored" in report and "Paired against natural thinking on the same 3 items" in report

    # Resuming adds nothing; other anchor settings in the same folder are refused.
    before = len(fake.stats.requests)
    assert _bench(fake, out, "--anchors-max", "4") == 0
    assert len(fake.stats.requests) == before
    assert _bench(fake, out, "--anchors-max", "2") == 2
    assert len(fake.stats.requests) == before


def test_an_anchors_file_gives_every_task_its_examples(fake, tmp_path, data_dir):
    fake.reset(SCRIPT)
    path = tmp_path / "anchors.jsonl"
    path.write_text("".join(json.dumps({"question": f"Q{i}?", "answer": f"<answer>{i}</answer>"})
                            + "\n" for i in range(3)))
    out = tmp_path / "run"
    assert _bench(fake, out, "--anchors", str(path), "--regimes", "anchored",
                  "--data-dir", str(data_dir), task="ai_risk:survival-instinct") == 0
    mains = _mains(fake)
    assert len(mains) == 3 and not fake.stats.of_kind("probe")  # no natural traces asked
    for body in mains:
        assert [t["content"] for t in _examples_in(body)] == [
            "Q0?", "<answer>0</answer>", "Q1?", "<answer>1</answer>", "Q2?", "<answer>2</answer>"]


def test_a_behaviour_task_without_a_file_stops_before_any_call(fake, tmp_path, capsys,
                                                               data_dir):
    fake.reset(SCRIPT)
    out = tmp_path / "run"
    assert _bench(fake, out, "--regimes", "anchored", "--data-dir", str(data_dir),
                  task="ai_risk:survival-instinct") == 2
    err = capsys.readouterr().err
    assert "scores a behaviour" in err and "--anchors FILE" in err
    assert not fake.stats.requests and not out.exists()


def test_a_bad_anchors_file_names_its_line(fake, tmp_path, capsys):
    fake.reset(SCRIPT)
    path = tmp_path / "anchors.jsonl"
    path.write_text('{"question": "Q?", "answer": "<answer>1</answer>"}\n{"question": 3}\n')
    out = tmp_path / "run"
    assert _bench(fake, out, "--anchors", str(path)) == 2
    assert f"{path}: line 2: 'question' must be a non-empty string" in capsys.readouterr().err
    assert not fake.stats.requests and not out.exists()
    assert _bench(fake, out, "--anchors", str(tmp_path / "missing.jsonl")) == 2
    assert "cannot read anchors file" in capsys.readouterr().err


def test_generated_examples_are_the_plainest_level_and_never_the_runs_items():
    options = Options()
    items = load_items("grades_regression", 30, 0, options)
    anchors = generated_anchors("grades_regression", 0, 8, options, items)
    assert len(anchors.examples) == 8
    prompts = {i.prompt for i in items}
    for ex in anchors.examples:
        assert ex.question not in prompts
        assert ex.question.count("<record>") == 1  # zero-shot: only the target record
        assert ex.answer.startswith("<answer>") and ex.answer.endswith("</answer>")
    with pytest.raises(AnchorsUnavailable, match="scores a behaviour"):
        generated_anchors("ai_risk:survival-instinct", 0, 8, options)
