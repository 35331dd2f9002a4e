"""PNG plots: score against mean reasoning tokens, one figure per task.

Made to be read at a glance: requested and truncated budgets and natural thinking are
lines through their points, each point with a thin 95% interval; policies are large
labelled markers (reasoning + probe tokens on x), nudged apart when they coincide; the
score with no thinking at all is a dashed reference line; the legend sits outside the
axes so it never covers a point. matplotlib is imported here only, with the
non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_STYLE = {
    "requested": ("tab:blue", "o"),
    "truncate": ("tab:orange", "s"),
    "natural": ("tab:green", "^"),
    "anchored": ("tab:purple", "*"),
}
_POLICY_MARKERS = "DPX*hv<>"
_RATES = {"accuracy", "behavior_rate"}
_YLABEL = {
    "accuracy": "accuracy",
    "neg_mae": "- mean absolute error (higher is better)",
    "behavior_rate": "matching-behaviour rate",
}


def _interval(score: dict[str, Any]) -> tuple[float, float, float]:
    mean = float(score["mean"])
    half = float(score.get("ci95", 0.0))
    return mean, float(score.get("low", mean - half)), float(score.get("high", mean + half))


def plot_task(task: str, data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = data["levels"]["all"]
    fig, ax = plt.subplots(figsize=(8.6, 4.6), dpi=120)
    try:
        xs_all: list[float] = []
        baseline: float | None = None
        for name, curve in group["regimes"].items():
            color, marker = _STYLE.get(name, ("tab:gray", "o"))
            points = curve["points"]
            xs = [float(p["reasoning_tokens"]) for p in points]
            stats = [_interval(p["score"]) for p in points]
            ys = [m for m, _, _ in stats]
            xs_all += xs
            ax.plot(xs, ys, marker=marker, color=color, linewidth=1.8, markersize=6,
                    label=f"{name} ({curve['trend']})", zorder=3)
            ax.errorbar(xs, ys, yerr=[[m - lo for m, lo, _ in stats],
                                      [hi - m for m, _, hi in stats]],
                        fmt="none", ecolor=color, alpha=0.45, elinewidth=1, capsize=3,
                        zorder=2)
            if name == "truncate" and points and str(points[0]["setting"]) == "0":
                baseline = ys[0]
        policies = group["policies"]
        xs_all += [float(p["reasoning_tokens"]) + float(p["probe_tokens"]) for p in policies]
        span = (max(xs_all) - min(xs_all)) if xs_all else 1.0
        seen: dict[tuple[int, int], int] = {}
        for i, p in enumerate(policies):
            x = float(p["reasoning_tokens"]) + float(p["probe_tokens"])
            mean, low, high = _interval(p["score"])
            # Policies that land on the same point are nudged apart so each stays visible.
            key = (round(x / max(span, 1.0) * 30), round(mean * 30))
            k = seen.get(key, 0)
            x += k * 0.025 * max(span, 1.0)
            seen[key] = k + 1
            color = f"C{(i + 3) % 10}"
            ax.errorbar([x], [mean], yerr=[[mean - low], [high - mean]],
                        fmt=_POLICY_MARKERS[i % len(_POLICY_MARKERS)], color=color,
                        markersize=9, markeredgecolor="black", markeredgewidth=0.6,
                        elinewidth=1, capsize=3, alpha=0.9, zorder=4,
                        label=f"{p['setting']}")
            ax.annotate(str(p["setting"]).split(":")[0], (x, mean), xytext=(7, 4 + 11 * k),
                        textcoords="offset points", fontsize=7, color=color)
        if baseline is not None:
            ax.axhline(baseline, color="0.35", linestyle="--", linewidth=1, zorder=1,
                       label="no thinking (truncate at 0)")
        if data["metric"] in _RATES:
            ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("mean reasoning tokens (policies: reasoning + probe tokens)")
        ax.set_ylabel(_YLABEL.get(data["metric"], "score"))
        ax.set_title(f"{task}: {group['items']} items; bars are 95% intervals", fontsize=10)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, frameon=False)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_all(summary: dict[str, Any], folder: Path) -> dict[str, str]:
    """One PNG per task under ``folder``; returns task -> path relative to its parent."""
    out: dict[str, str] = {}
    for task, data in summary["tasks"].items():
        name = task.replace(":", "_").replace("/", "_") + ".png"
        plot_task(task, data, folder / name)
        out[task] = f"{folder.name}/{name}"
    return out


def plot_frontier(result: Any, path: Path) -> Path:
    """``thinkstop tune --plot``: every configuration (grey), the Pareto frontier, natural,
    the fixed budgets, and the recommendation with its cross-validated interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.6, 4.8), dpi=120)
    try:
        points = result.points
        ax.scatter([p["cost"]["mean"] for p in points], [p["score"]["mean"] for p in points],
                   s=8, color="0.75", label=f"configurations ({len(points)})", zorder=1)
        front = result.frontier
        ax.plot([p["cost"]["mean"] for p in front], [p["score"]["mean"] for p in front],
                color="tab:blue", marker="o", markersize=4, linewidth=1.5,
                label="Pareto frontier (in-sample)", zorder=3)
        budgets = sorted((p for k, p in result.baselines.items() if k.startswith("fixed")),
                         key=lambda p: p["cost"]["mean"])
        if budgets:
            ax.plot([p["cost"]["mean"] for p in budgets],
                    [p["score"]["mean"] for p in budgets], color="tab:orange", marker="s",
                    markersize=4, linewidth=1, label="fixed budgets", zorder=2)
        natural = result.baselines["natural"]
        ax.scatter([natural["cost"]["mean"]], [natural["score"]["mean"]], marker="X", s=90,
                   color="black", label="natural (no halting)", zorder=4)
        cv_score, cv_cost = result.cv_score, result.cv_cost
        ax.errorbar([cv_cost.mean], [cv_score.mean],
                    yerr=[[cv_score.mean - cv_score.low], [cv_score.high - cv_score.mean]],
                    xerr=[[cv_cost.mean - cv_cost.low], [cv_cost.high - cv_cost.mean]],
                    fmt="*", markersize=14, color="tab:red", elinewidth=1, capsize=3,
                    label="recommended (cross-validated)", zorder=5)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("mean tokens per request (reasoning + probes)")
        ax.set_ylabel("accuracy" if result.objective == "accuracy"
                      else "agreement with the model's own answer")
        ax.set_title(f"thinkstop tune: {result.n} traces, {result.folds}-fold CV; "
                     f"recommended {result.recommended}", fontsize=9)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
