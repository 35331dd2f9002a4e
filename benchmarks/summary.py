"""``summary.json``: per task and difficulty level, every regime's score against tokens.

Built from ``items.jsonl`` rows alone (plus the saved run settings), so ``bench report``
rebuilds it from the files. Scores are "higher is better": accuracy, the rate of the
matching behaviour (ai_risk), or minus the mean absolute error (grades; the paper's
"RMSE" axis), whose true RMSE and feature correlations are reported next to it.
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
    trend,
)
from thinkstop.benchmarks.tasks import LEVEL_NAMES, family, metric

Row = dict[str, Any]
CURVES = ("requested", "truncate")


def _sort_key(level: str) -> tuple[int, float, str]:
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def _point(rows: Sequence[Row], setting: str) -> dict[str, Any]:
    score = mean_ci([float(r["score"]) for r in rows])
    point: dict[str, Any] = {
        "setting": setting,
        "n": score.n,
        "score": score.as_dict(),
        "reasoning_tokens": round(mean_ci([float(r["reasoning_tokens"]) for r in rows]).mean, 2),
        "probe_tokens": round(mean_ci([float(r.get("probe_tokens", 0)) for r in rows]).mean, 2),
        "accuracy": round(sum(bool(r["correct"]) for r in rows) / len(rows), 6),
    }
    if any("abs_error" in r for r in rows):
        point["regression"] = regression_stats(rows)
    capped = sum(bool(r.get("capped")) for r in rows)
    if capped:
        point["capped"] = capped
    return point


def regression_stats(rows: Sequence[Row]) -> dict[str, Any]:
    """True RMSE, the paper's negative mean absolute error, and prediction correlations."""
    errors = [float(r["abs_error"]) for r in rows if r.get("abs_error") is not None]
    parsed = [r for r in rows if r.get("prediction") is not None and r.get("features")]
    predictions = [float(r["prediction"]) for r in parsed]
    correlations: dict[str, float | None] = {}
    truth: dict[str, float | None] = {}
    if parsed:
        for name in parsed[0]["features"]:
            xs = [float(r["features"].get(name, math.nan)) for r in parsed]
            value = pearson(xs, predictions)
            correlations[name] = round(value, 4) if value is not None else None
            real = pearson(xs, [float(r["expected"]) for r in parsed])
            truth[name] = round(real, 4) if real is not None else None
    return {
        "rmse": round(rmse(errors), 6),
        "neg_mae": round(-math.fsum(errors) / len(errors), 6) if errors else None,
        "parsed": len(parsed),
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
    samples: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["regime"] == "natural":
            samples[r["id"]].append((int(r["reasoning_tokens"]), float(r["score"])))
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
    return {"points": points, "trend": label, "samples": len(bins)}


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
    """How far live runs differ from replay on the same items."""
    by_id = {r["id"]: r for r in replayed}
    pairs = [(by_id[r["id"]], r) for r in live if r["id"] in by_id]
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
        levels = sorted({str(r["level"]) for r in chosen}, key=_sort_key)
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
    return {"format": "thinkstop.bench-summary/1", "config": config or {}, "tasks": tasks}
