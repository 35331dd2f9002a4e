import json
import math

import pytest

from thinkstop.benchmarks.rows import make_row
from thinkstop.benchmarks.store import JsonlStore
from thinkstop.benchmarks.summary import summarize
from thinkstop.benchmarks.tasks.base import Item


def test_partial_last_line_is_dropped_and_trimmed(tmp_path):
    store = JsonlStore(tmp_path / "rows.jsonl")
    store.append([{"a": 1}, {"a": 2}])
    with store.path.open("a") as handle:
        handle.write('{"a": 3, "b"')  # a crash mid-write
    assert store.load() == [{"a": 1}, {"a": 2}]
    store.append({"a": 4})
    assert store.load() == [{"a": 1}, {"a": 2}, {"a": 4}]


def _rows(regime, setting, scores, tokens, probe=0):
    rows = []
    for i, (score, tok) in enumerate(zip(scores, tokens, strict=True)):
        item = Item(f"q{i}", "misleading_math", "p", "2", "open", str(1 + i % 2))
        rows.append(
            make_row(
                item,
                regime,
                setting,
                answer="2" if score else "3",
                reasoning_tokens=tok,
                probe_tokens=probe,
            )
        )
    return rows


def test_summary_curves_trends_and_savings():
    rows = (
        _rows("truncate", "0", [1] * 20, [0] * 20)
        + _rows("truncate", "100", [1] * 20, [100] * 20)
        + _rows("truncate", "400", [0] * 10 + [1] * 10, [400] * 20)
        + _rows("policy", "plateau", [1] * 20, [40] * 20, probe=10)
    )
    summary = summarize(rows, {"model": "m"})
    group = summary["tasks"]["misleading_math"]["levels"]["all"]
    curve = group["regimes"]["truncate"]
    assert [p["setting"] for p in curve["points"]] == ["0", "100", "400"]
    assert curve["points"][2]["score"]["mean"] == 0.5
    assert curve["trend"] == "inverse"
    policy = group["policies"][0]
    assert policy["reasoning_tokens"] == 40 and policy["probe_tokens"] == 10
    # The cheapest fixed budget as good as the policy is budget 0 (0 tokens): the policy
    # costs 50 more tokens there, and probe tokens are counted.
    assert policy["vs_truncate"]["reference"] == "0"
    assert policy["vs_truncate"]["saved_tokens"] == -50
    assert set(summary["tasks"]["misleading_math"]["levels"]) == {"all", "1", "2"}
    json.dumps(summary)


def _grade_rows(answers, regime="requested", setting="0"):
    rows = []
    for i, answer in enumerate(answers):
        study = 5 + i * 0.4
        truth = 4 + 0.5 * i
        item = Item(
            f"g{i}",
            "grades_regression",
            "p",
            f"{truth:g}",
            "regression",
            "0",
            {"features": {"Study_Hours_Per_Day": study, "Sleep_Hours_Per_Day": 7.0}},
        )
        text = answer(truth) if callable(answer) else answer
        rows.append(make_row(item, regime, setting, answer=text, reasoning_tokens=0))
    return rows


def _first_point(summary, regime="requested"):
    return summary["tasks"]["grades_regression"]["levels"]["all"]["regimes"][regime]["points"][0]


def test_summary_regression_reports_rmse_parse_rate_and_correlations():
    answers = [(lambda t, i=i: f"{t + (1 if i % 2 else -1):g}") for i in range(11)]
    rows = _grade_rows([*answers, "no idea"])
    point = _first_point(summarize(rows))
    reg = point["regression"]
    assert (reg["rows"], reg["parsed"], reg["unparsed"]) == (12, 11, 1)
    assert reg["parse_rate"] == round(11 / 12, 6)
    assert reg["prediction_correlations"]["Study_Hours_Per_Day"] > 0.8
    assert reg["prediction_correlations"]["Sleep_Hours_Per_Day"] is None  # constant feature
    assert reg["truth_correlations"]["Study_Hours_Per_Day"] > 0.99
    # The unparsed answer is left out of the errors (the paper drops it), not counted as
    # the farthest prediction: every parsed answer is off by exactly 1.
    assert point["score"]["mean"] == -1.0 and point["n"] == 11
    assert reg["neg_mae"] == -1.0 and reg["rmse"] == 1.0
    assert reg["neg_mae_sem"] == 0.0


def test_regression_error_metrics_and_standard_error():
    offsets = [0.5, -1.5, 2.0, -0.5, 1.0, 0.0]
    rows = _grade_rows([(lambda t, o=o: f"{t + o:g}") for o in offsets])
    reg = _first_point(summarize(rows))["regression"]
    errors = [abs(o) for o in offsets]
    mean = sum(errors) / len(errors)
    assert reg["neg_mae"] == pytest.approx(-mean, abs=1e-6)
    assert reg["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 6), abs=1e-6)
    sd = math.sqrt(sum((e - mean) ** 2 for e in errors) / 5)
    assert reg["neg_mae_sem"] == pytest.approx(sd / math.sqrt(6), abs=1e-6)


def test_old_rows_that_scored_unparsed_grades_as_the_worst_error_read_as_unparsed():
    rows = _grade_rows(["5", "no idea"])
    # A folder written before: the unparsed answer carried the worst error as its score.
    rows[1].update(score=-9.5, abs_error=9.5, prediction=None)
    point = _first_point(summarize(rows))
    assert point["n"] == 1 and point["score"]["mean"] == -1.0
    assert point["regression"]["unparsed"] == 1


def test_report_shows_the_parse_rate_and_every_feature_correlation():
    from thinkstop.benchmarks.report import render

    answers = [(lambda t: f"{t:g}")] * 5 + ["?"]
    text = render(summarize(_grade_rows(answers)))
    assert "| parsed |" in text and "5/6 (83%)" in text
    assert "r(pred, study)" in text and "r(pred, sleep)" in text
    assert "-MAE ± SEM" in text


def test_runs_average_per_item_then_across_items():
    rows = []
    for run, scores in enumerate([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]]):
        for i, score in enumerate(scores):
            item = Item(f"q{i}", "misleading_math", "p", "2", "open", "1")
            rows.append(make_row(item, "truncate", "64", answer="2" if score else "3",
                                 reasoning_tokens=10 * (run + 1), run=run))
    assert len({r["key"] for r in rows}) == 12  # runs do not collide
    point = summarize(rows)["tasks"]["misleading_math"]["levels"]["all"]["regimes"][
        "truncate"]["points"][0]
    assert (point["n"], point["rows"], point["runs"]) == (4, 12, 3)
    assert point["run_scores"] == [0.5, 0.25, 0.75]
    means = [1.0, 2 / 3, 1 / 3, 0.0]  # each item's mean over its three runs
    assert point["score"]["mean"] == pytest.approx(sum(means) / 4, abs=1e-6)
    assert point["score"]["low"] < point["score"]["mean"] < point["score"]["high"]
    assert point["reasoning_tokens"] == 20.0
