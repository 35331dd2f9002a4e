"""``thinkstop replay`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinkstop.proxy.entrypoints.cli import main

DRIFT = Path(__file__).resolve().parents[2] / "benchmarks" / "traces" / "drift.jsonl"


def test_table_lists_policies_in_order_then_natural(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["replay", str(DRIFT), "--policy", "fixed:budget=1024", "--policy", "plateau"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split()[:3] == ["policy", "n", "accuracy"]
    assert [line.split()[0] for line in out[1:]] == ["fixed:budget=1024", "plateau", "natural"]


def test_json_rows_count_probe_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DRIFT), "--policy", "plateau", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["policies"]
    plateau, natural = rows
    assert plateau["n"] == natural["n"] == 400
    assert plateau["mean_probe_tokens"] > 0
    expected = natural["mean_reasoning_tokens"] - plateau["mean_reasoning_tokens"] - plateau[
        "mean_probe_tokens"]
    assert plateau["tokens_saved"] == pytest.approx(expected, abs=0.2)
    assert plateau["accuracy"] > natural["accuracy"]


def test_default_policy_is_plateau(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DRIFT), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["policies"]
    assert [r["policy"] for r in rows] == ["plateau", "natural"]


def test_malformed_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    lines = DRIFT.read_text().splitlines()[:3]
    bad.write_text("\n".join([lines[0], lines[1], "{oops", lines[2]]) + "\n")
    assert main(["replay", str(bad)]) == 2
    assert "line 3: invalid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "bogus"], "unknown policy 'bogus'; valid policies:"),
        (["--policy", "plateau:window=0"], "window must be >= 1"),
    ],
)
def test_bad_policy(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DRIFT), *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_and_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["replay", str(empty)]) == 2
    assert "holds no traces" in capsys.readouterr().err
