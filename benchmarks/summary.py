"""``summary.json``: per task and difficulty level, every regime's score against tokens.

Built from ``items.jsonl`` rows alone (plus the saved run settings), so ``bench report``
rebuilds it from the files. Scores are "higher is better": accuracy, the rate of the
matching behaviour (ai_risk), or minus the mean absolute error (grades; the paper's
"RMSE" axis), whose true RMSE, standard error, parse rate and feature correlations are
reported next to it. A regression answer that did not parse is left out of the error
mean and counted in the parse rate, as the paper drops such answers.

With ``--runs N`` an item has N rows per setting: a point's score averages each item's
runs first, then takes the mean and its 95% interval across items (the runs of one item
are not independent evidence about the population of items); ``run_scores`` gives each
run's own mean, so the run-to-run spread stays visible.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from thinkstop.benchmarks.stats import (
    ACCURACY_THRESHOLD,
    ERROR_THRESHOLD,
    Estimate,
    mean_ci,
    pearson,
    rank_bins,
    rmse,
    sem,
    trend,
)
from thinkstop.benchmarks.tasks import LEVEL_NAMES, family, level_key, metric

Row = dict[str, Any]
CURVES = ("requested", "truncate")
FORMAT = "thinkstop.bench-summary/2"


def _is_regression(row: Row) -> bool:
    return "abs_error" in row or "prediction" in row


def row_score(row: Row) -> float | None:
    """What a row adds to its point's mean; None for an unparsed regression answer.

    Regression rows are read from their prediction, so folders written when an unparsed
    answer scored as the worst error are summarised the same way as new ones.
    """
    if _is_regression(row):
        if row.get("prediction") is None or row.get("abs_error") is None:
            return None
        return -float(row["abs_error"])
    value = row.get("score")
    return None if value is None else float(value)


def _run(row: Row) -> int:
    return int(row.get("run", 0))


def _item_means(rows: Sequence[Row]) -> dict[str, float]:
    """Each item's mean score over its runs (items with no scored row left out)."""
    by_item: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        value = row_score(r)
        if value is not None:
            by_item[str(r["id"])].append(value)
    return {k: math.fsum(v) / len(v) for k, v in by_item.items()}


def _run_scores(rows: Sequence[Row]) -> list[float]:
    by_run: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        by_run[_run(r)].append(r)
    out: list[float] = []
    for run in sorted(by_run):
        means = list(_item_means(by_run[run]).values())
        out.append(round(math.fsum(means) / len(means), 6) if means else math.nan)
    return out


def _point(rows: Sequence[Row], setting: str) -> dict[str, Any]:
    score = mean_ci(list(_item_means(rows).values()))
    runs_of: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        runs_of[str(r["id"])].add(_run(r))
    runs = max((len(v) for v in runs_of.values()), default=0)
    point: dict[str, Any] = {
        "setting": setting,
        "n": score.n,
        "rows": len(rows),
        "runs": runs,
        "score": score.as_dict(),
        "reasoning_tokens": round(mean_ci([float(r["reasoning_tokens"]) for r in rows]).mean, 2),
        "probe_tokens": round(mean_ci([float(r.get("probe_tokens", 0)) for r in rows]).mean, 2),
        "accuracy": round(sum(bool(r["correct"]) for r in rows) / len(rows), 6),
    }
    if runs > 1:
        point["run_scores"] = _run_scores(rows)
    if any(_is_regression(r) for r in rows):
        point["regression"] = regression_stats(rows)
    capped = sum(bool(r.get("capped")) for r in rows)
    if capped:
        point["capped"] = capped
    return point


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def regression_stats(rows: Sequence[Row]) -> dict[str, Any]:
    """The parse rate, true RMSE, the paper's negative mean absolute error with its
    standard error, and the correlation of predictions (and of the truth) with each
    feature, over the rows whose answer parsed."""
    chosen = [r for r in rows if _is_regression(r)]
    parsed = [r for r in chosen if row_score(r) is not None]
    errors = [float(r["abs_error"]) for r in parsed]
    predictions = [float(r["prediction"]) for r in parsed]
    correlations: dict[str, float | None] = {}
    truth: dict[str, float | None] = {}
    with_features = [(r, p) for r, p in zip(parsed, predictions, strict=True) if r.get("features")]
    if with_features:
        for name in with_features[0][0]["features"]:
            xs = [float(r["features"].get(name, math.nan)) for r, _ in with_features]
            correlations[name] = _rounded(pearson(xs, [p for _, p in with_features]), 4)
            real = pearson(xs, [float(r["expected"]) for r, _ in with_features])
            truth[name] = _rounded(real, 4)
    return {
        "rows": len(chosen),
        "parsed": len(parsed),
        "unparsed": len(chosen) - len(parsed),
        "parse_rate": round(len(parsed) / len(chosen), 6) if chosen else None,
        "rmse": _rounded(rmse(errors)),
        "neg_mae": round(-math.fsum(errors) / len(errors), 6) if errors else None,
        "neg_mae_sem": _rounded(sem(errors)),
        "prediction_correlations": correlations,
        "truth_correlations": truth,
    }


def _estimate(point: dict[str, Any]) -> Estimate:
    return Estimate.from_dict(point["score"])


def _curve(rows: Sequence[Row], regime: str, threshold: float) -> dict[str, Any] | None:
    chosen = [r for r in rows if r["regime"] == regime]
    if not chosen:
        return None
    by_setting: dict[str, list[Row]] = defaultdict(list)
    for r in chosen:
        by_setting[str(r["setting"])].append(r)
    points = [_point(by_setting[s], s) for s in sorted(by_setting, key=lambda s: float(s))]
    points.sort(key=lambda p: p["reasoning_tokens"])
    label = (
        trend(_estimate(points[0]), _estimate(points[-1]), threshold) if len(points) > 1 else "n/a"
    )
    return {"points": points, "trend": label}


def _natural(rows: Sequence[Row], threshold: float) -> dict[str, Any] | None:
    samples: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    chosen = [r for r in rows if r["regime"] == "natural"]
    for r in chosen:
        samples[r["id"]].append((int(r["reasoning_tokens"]), row_score(r)))
    if not samples:
        return None
    bins = rank_bins(samples)
    points = [
        {
            "setting": f"rank {b.rank}",
            "rank": b.rank,
            "n": b.score.n,
            "score": b.score.as_dict(),
            "reasoning_tokens": round(b.tokens.mean, 2),
            "probe_tokens": 0.0,
        }
        for b in bins
    ]
    label = trend(bins[0].score, bins[-1].score, threshold) if len(bins) > 1 else "n/a"
    curve: dict[str, Any] = {"points": points, "trend": label, "samples": len(bins)}
    if any(_is_regression(r) for r in chosen):
        curve["regression"] = regression_stats(chosen)
    return curve


def _anchored(rows: Sequence[Row]) -> dict[str, Any] | None:
    """The anchored regime: one point, and its paired difference from natural thinking.

    The difference is taken item by item (each item's mean over its anchored samples
    minus its mean over its natural ones), on the items scored both ways, so it is not
    blurred by how hard the items are; its interval is Student's t, never Wilson.
    """
    chosen = [r for r in rows if r["regime"] == "anchored"]
    if not chosen:
        return None
    examples = max(int(r.get("anchors", 0)) for r in chosen)
    point = _point(chosen, f"{examples} examples")
    anchored = _item_means(chosen)
    natural = _item_means([r for r in rows if r["regime"] == "natural"])
    common = sorted(set(anchored) & set(natural))
    curve: dict[str, Any] = {"points": [point], "trend": "n/a"}
    if common:
        diffs = [anchored[i] - natural[i] for i in common]
        curve["vs_natural"] = mean_ci(diffs, rate=False).as_dict()
    return curve


def _savings(policy: dict[str, Any], fixed: dict[str, Any] | None) -> dict[str, Any] | None:
    """Tokens saved against the cheapest fixed budget whose score is equal or better."""
    if fixed is None:
        return None
    score = policy["score"]["mean"]
    cost = policy["reasoning_tokens"] + policy["probe_tokens"]
    matches = [p for p in fixed["points"] if p["score"]["mean"] >= score - 1e-12]
    if not matches:
        best = max(fixed["points"], key=lambda p: p["score"]["mean"])
        return {
            "reference": None,
            "saved_tokens": None,
            "note": (
                f"no fixed budget reaches this score (best: {best['setting']} at "
                f"{best['score']['mean']:.3f})"
            ),
        }
    ref = min(matches, key=lambda p: p["reasoning_tokens"] + p["probe_tokens"])
    ref_cost = ref["reasoning_tokens"] + ref["probe_tokens"]
    saved = ref_cost - cost
    return {
        "reference": ref["setting"],
        "reference_score": ref["score"]["mean"],
        "reference_tokens": ref_cost,
        "saved_tokens": round(saved, 2),
        "saved_pct": round(100 * saved / ref_cost, 1) if ref_cost else None,
    }


def _policies(rows: Sequence[Row], curves: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    by_policy: dict[str, list[Row]] = defaultdict(list)
    live: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r["regime"] == "policy":
            by_policy[str(r["setting"])].append(r)
        elif r["regime"] == "live":
            live[str(r["setting"])].append(r)
    for spec, chosen in by_policy.items():
        point = _point(chosen, spec)
        point["vs_truncate"] = _savings(point, curves.get("truncate"))
        point["vs_requested"] = _savings(point, curves.get("requested"))
        if spec in live:
            point["live"] = _live_gap(chosen, live[spec])
        out.append(point)
    return out


def _live_gap(replayed: Sequence[Row], live: Sequence[Row]) -> dict[str, Any]:
    """How far live runs differ from replay on the same items and runs."""
    by_run = {(r["id"], _run(r)): r for r in replayed}
    pairs = [(by_run[(r["id"], _run(r))], r) for r in live if (r["id"], _run(r)) in by_run]
    live_point = _point([b for _, b in pairs], "live") if pairs else None
    replay_point = _point([a for a, _ in pairs], "replay") if pairs else None
    if live_point is None or replay_point is None:
        return {"n": 0}
    same = sum(a.get("parsed") == b.get("parsed") for a, b in pairs)
    return {
        "n": len(pairs),
        "live_score": live_point["score"],
        "replay_score": replay_point["score"],
        "score_diff": round(live_point["score"]["mean"] - replay_point["score"]["mean"], 6),
        "live_tokens": live_point["reasoning_tokens"],
        "replay_tokens": replay_point["reasoning_tokens"],
        "tokens_diff": round(live_point["reasoning_tokens"] - replay_point["reasoning_tokens"], 2),
        "same_answer_rate": round(same / len(pairs), 6),
    }


def summarize_group(rows: Sequence[Row], task: str) -> dict[str, Any]:
    threshold = ERROR_THRESHOLD if metric(task) == "neg_mae" else ACCURACY_THRESHOLD
    curves: dict[str, Any] = {}
    for regime in CURVES:
        curve = _curve(rows, regime, threshold)
        if curve is not None:
            curves[regime] = curve
    natural = _natural(rows, threshold)
    if natural is not None:
        curves["natural"] = natural
    anchored = _anchored(rows)
    if anchored is not None:
        curves["anchored"] = anchored
    return {
        "items": len({r["id"] for r in rows}),
        "regimes": curves,
        "policies": _policies(rows, curves),
    }


def summarize(rows: Iterable[Row], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole summary: per task, ``all`` levels and each difficulty level."""
    by_task: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_task[str(r["task"])].append(r)
    tasks: dict[str, Any] = {}
    for task in sorted(by_task):
        chosen = by_task[task]
        levels = sorted({str(r["level"]) for r in chosen}, key=level_key)
        tasks[task] = {
            "metric": metric(task),
            "level_name": LEVEL_NAMES[family(task)],
            "levels": {
                "all": summarize_group(chosen, task),
                **{
                    lv: summarize_group([r for r in chosen if str(r["level"]) == lv], task)
                    for lv in levels
                },
            },
        }
    return {"format": FORMAT, "config": config or {}, "tasks": tasks}
