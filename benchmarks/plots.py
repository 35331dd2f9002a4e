"""PNG plots: score against mean reasoning tokens, one figure per task.

Requested and truncated budgets are curves with 95% CI bands, natural thinking is a curve
of rank bins, and each policy is a point with its CI. matplotlib is imported here only
(the ``plots`` extra), with the non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_STYLE = {
    "requested": ("tab:blue", "o"),
    "truncate": ("tab:orange", "s"),
    "natural": ("tab:green", "^"),
}


_RATES = {"accuracy", "behavior_rate"}


def plot_task(task: str, data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = data["levels"]["all"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    try:
        for name, curve in group["regimes"].items():
            color, marker = _STYLE.get(name, ("tab:gray", "o"))
            xs = [p["reasoning_tokens"] for p in curve["points"]]
            ys = [p["score"]["mean"] for p in curve["points"]]
            ci = [p["score"]["ci95"] for p in curve["points"]]
            ax.plot(xs, ys, marker=marker, color=color, label=f"{name} ({curve['trend']})")
            ax.fill_between(
                xs,
                [y - c for y, c in zip(ys, ci, strict=True)],
                [y + c for y, c in zip(ys, ci, strict=True)],
                color=color,
                alpha=0.15,
            )
        markers = "DPX*hv<>"
        for i, p in enumerate(group["policies"]):
            x = p["reasoning_tokens"] + p["probe_tokens"]
            ax.errorbar(
                [x],
                [p["score"]["mean"]],
                yerr=[p["score"]["ci95"]],
                fmt=markers[i % 8],
                color=f"C{(i + 3) % 10}",
                markersize=8,
                capsize=3,
                label=f"{p['setting']} (reasoning + probes)",
            )
        if data["metric"] in _RATES:
            # Normal-approximation intervals of a rate can pass 0 or 1; the rate cannot.
            ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("mean reasoning tokens")
        ax.set_ylabel(
            {
                "accuracy": "accuracy",
                "neg_mae": "- mean absolute error",
                "behavior_rate": "matching-behaviour rate",
            }.get(data["metric"], "score")
        )
        ax.set_title(f"{task} ({group['items']} items)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
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
