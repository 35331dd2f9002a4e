import json

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


def test_summary_regression_reports_rmse_and_correlations():
    rows = []
    for i in range(12):
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
        answer = f"{truth + (1 if i % 2 else -1):g}" if i < 11 else "no idea"
        rows.append(make_row(item, "requested", "0", answer=answer, reasoning_tokens=0))
    summary = summarize(rows)
    point = summary["tasks"]["grades_regression"]["levels"]["all"]["regimes"]["requested"][
        "points"
    ][0]
    reg = point["regression"]
    assert reg["parsed"] == 11
    assert reg["prediction_correlations"]["Study_Hours_Per_Day"] > 0.8
    assert reg["prediction_correlations"]["Sleep_Hours_Per_Day"] is None  # constant feature
    assert reg["truth_correlations"]["Study_Hours_Per_Day"] > 0.99
    worst = max(9.5, 0.5)  # the unparseable answer counts as the farthest prediction
    expected_mae = (11 * 1 + worst) / 12
    assert point["score"]["mean"] == round(-expected_mae, 6)
    assert reg["rmse"] > expected_mae
