"""``report.md``: the summary as Markdown tables, with the plots linked."""

from __future__ import annotations

from typing import Any

_METRIC_TEXT = {
    "accuracy": "accuracy",
    "neg_mae": "minus mean absolute error (the paper's 'RMSE' axis; higher is better)",
    "behavior_rate": "rate of the answer matching the behaviour",
}
_REGIME_TEXT = {
    "requested": "requested budget (prompt + native control)",
    "truncate": "truncated at budget (replay)",
    "natural": "natural, k-th shortest of each item's samples",
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _score(point: dict[str, Any]) -> str:
    s = point["score"]
    return f"{s['mean']:.3f} ± {s['ci95']:.3f}"


def _regime_table(name: str, curve: dict[str, Any]) -> list[str]:
    lines = [
        f"*{_REGIME_TEXT.get(name, name)}*, trend: **{curve['trend']}**",
        "",
        "| setting | n | score (95% CI) | reasoning tokens | probe tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in curve["points"]:
        extra = f" ({p['capped']} capped)" if p.get("capped") else ""
        lines.append(
            f"| {p['setting']}{extra} | {p['n']} | {_score(p)} | "
            f"{_fmt(p['reasoning_tokens'], 1)} | {_fmt(p['probe_tokens'], 1)} |"
        )
    return [*lines, ""]


def _policy_table(policies: list[dict[str, Any]]) -> list[str]:
    lines = [
        "*policies (replay)*",
        "",
        "| policy | n | score (95% CI) | reasoning | probe | vs truncate | vs requested |",
        "|---|---:|---:|---:|---:|---|---|",
    ]

    def saving(s: dict[str, Any] | None) -> str:
        if not s:
            return "-"
        if s.get("reference") is None:
            return str(s.get("note", "-"))
        pct = s.get("saved_pct")
        # A budget-0 reference has no percentage: the tokens alone say it.
        share = f" ({_fmt(pct, 1)}%)" if pct is not None else ""
        return f"{s['saved_tokens']:+.0f} tokens{share} vs budget {s['reference']}"

    for p in policies:
        lines.append(
            f"| `{p['setting']}` | {p['n']} | {_score(p)} | {_fmt(p['reasoning_tokens'], 1)}"
            f" | {_fmt(p['probe_tokens'], 1)} | {saving(p.get('vs_truncate'))} | "
            f"{saving(p.get('vs_requested'))} |"
        )
    live = [p for p in policies if p.get("live", {}).get("n")]
    if live:
        lines += [
            "",
            "*live vs replay*",
            "",
            "| policy | n | live score | replay score | token diff | same answer |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for p in live:
            g = p["live"]
            lines.append(
                f"| `{p['setting']}` | {g['n']} | {g['live_score']['mean']:.3f} | "
                f"{g['replay_score']['mean']:.3f} | {g['tokens_diff']:+.1f} | "
                f"{g['same_answer_rate']:.2f} |"
            )
    return [*lines, ""]


def _regression(group: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, curve in group["regimes"].items():
        for p in curve["points"]:
            reg = p.get("regression")
            if not reg:
                continue
            corr = reg["prediction_correlations"]
            study = corr.get("Study_Hours_Per_Day")
            truth = reg["truth_correlations"].get("Study_Hours_Per_Day")
            lines.append(
                f"| {name} {p['setting']} | {_fmt(reg['rmse'])} | {_fmt(reg['neg_mae'])} | "
                f"{_fmt(study)} | {_fmt(truth)} |"
            )
    if not lines:
        return []
    head = [
        "*regression*: RMSE, -MAE and the correlation of predictions with study hours",
        "",
        "| regime | RMSE | -MAE | r(pred, study) | r(truth, study) |",
        "|---|---:|---:|---:|---:|",
    ]
    return [*head, *lines, ""]


def render(summary: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """Markdown for the whole summary; ``plots`` maps task -> relative PNG path."""
    config = summary.get("config", {})
    lines = ["# thinkstop benchmark report", ""]
    if config:
        lines += [
            f"- model: `{config.get('model')}`",
            f"- tasks: {', '.join(config.get('tasks', []))}; n = {config.get('n')} per task, "
            f"seed {config.get('seed')}",
            f"- budgets: {', '.join(str(b) for b in config.get('budgets', []))}; "
            f"chunk {config.get('chunk_tokens')} tokens; reasoning cap "
            f"{config.get('max_reasoning')}; natural samples {config.get('samples')}",
            f"- policies: {', '.join(f'`{p}`' for p in config.get('policies', []))}",
            "",
        ]
    lines += [
        "Scores are means with 95% confidence intervals (1.96 standard errors). Trend "
        "labels follow Gema et al. (arXiv 2507.14417): *inverse* / *positive* when the "
        "score moves by more than 2 points (0.05 for errors) from the least to the most "
        "reasoning with non-overlapping CIs, *flat* below that, *noisy* with overlapping "
        "CIs. Policy savings count probe tokens and compare with the cheapest fixed "
        "budget whose score is equal or better.",
        "",
    ]
    for task, data in summary["tasks"].items():
        lines += [
            f"## {task}",
            "",
            f"Score: {_METRIC_TEXT.get(data['metric'], data['metric'])}; "
            f"levels by `{data['level_name']}`.",
            "",
        ]
        if plots and task in plots:
            lines += [f"![{task}]({plots[task]})", ""]
        for level, group in data["levels"].items():
            title = "all levels" if level == "all" else f"{data['level_name']} = {level}"
            lines += [f"### {task}: {title} ({group['items']} items)", ""]
            for name, curve in group["regimes"].items():
                lines += _regime_table(name, curve)
            if group["policies"]:
                lines += _policy_table(group["policies"])
            lines += _regression(group)
    return "\n".join(lines).rstrip() + "\n"
