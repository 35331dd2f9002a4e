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
    "anchored": "natural thinking with worked examples as few-shot turns (anchored)",
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


def _count(point: dict[str, Any]) -> str:
    """Items, and runs per item when there are several."""
    runs = int(point.get("runs") or 1)
    return f"{point['n']} × {runs}" if runs > 1 else str(point["n"])


def _regime_table(name: str, curve: dict[str, Any]) -> list[str]:
    lines = [
        f"*{_REGIME_TEXT.get(name, name)}*, trend: **{curve['trend']}**",
        "",
        "| setting | n (× runs) | score (95% CI) | reasoning tokens | probe tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in curve["points"]:
        extra = f" ({p['capped']} capped)" if p.get("capped") else ""
        lines.append(
            f"| {p['setting']}{extra} | {_count(p)} | {_score(p)} | "
            f"{_fmt(p['reasoning_tokens'], 1)} | {_fmt(p['probe_tokens'], 1)} |"
        )
    paired = curve.get("vs_natural")
    if paired:
        lines += ["", f"Paired against natural thinking on the same {paired['n']} items: "
                  f"{paired['mean']:+.3f} (95% CI {paired['low']:+.3f} to {paired['high']:+.3f})."]
    return [*lines, ""]


def _policy_table(policies: list[dict[str, Any]]) -> list[str]:
    lines = [
        "*policies (replay)*",
        "",
        "| policy | n (× runs) | score (95% CI) | reasoning | probe | vs truncate | vs requested |",
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
            f"| `{p['setting']}` | {_count(p)} | {_score(p)} | {_fmt(p['reasoning_tokens'], 1)}"
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


_FEATURE_SHORT = {
    "Study_Hours_Per_Day": "study",
    "Extracurricular_Hours_Per_Day": "extracurricular",
    "Sleep_Hours_Per_Day": "sleep",
    "Social_Hours_Per_Day": "social",
    "Physical_Activity_Hours_Per_Day": "physical",
    "Stress_Level": "stress",
    "Gender": "gender",
}


def _parse_rate(reg: dict[str, Any]) -> str:
    rate = reg.get("parse_rate")
    share = f" ({100 * rate:.0f}%)" if rate is not None else ""
    return f"{reg.get('parsed', '-')}/{reg.get('rows', '-')}{share}"


def _regression_points(group: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, curve in group["regimes"].items():
        if name == "natural" and curve.get("regression"):
            found.append((f"{name} (all samples)", curve["regression"]))
        for p in curve["points"]:
            if p.get("regression"):
                found.append((f"{name} {p['setting']}", p["regression"]))
    for p in group.get("policies", []):
        if p.get("regression"):
            found.append((f"policy `{p['setting']}`", p["regression"]))
    return found


def _regression(group: dict[str, Any]) -> list[str]:
    found = _regression_points(group)
    if not found:
        return []
    features = [f for f in _FEATURE_SHORT if any(f in reg["truth_correlations"]
                                                   for _, reg in found)]
    lines = [
        "*regression*: answers that did not parse are left out of the errors and counted "
        "in *parsed*; -MAE is the paper's 'RMSE' axis (± one standard error, as the paper "
        "plots it); r(pred, x) is the correlation of the predictions with each feature",
        "",
        "| regime | parsed | RMSE | -MAE ± SEM | "
        + " | ".join(f"r(pred, {_FEATURE_SHORT[f]})" for f in features) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(features),
    ]
    for label, reg in found:
        corr = reg["prediction_correlations"]
        mae = f"{_fmt(reg['neg_mae'])} ± {_fmt(reg.get('neg_mae_sem'))}"
        cells = " | ".join(_fmt(corr.get(f)) for f in features)
        lines.append(f"| {label} | {_parse_rate(reg)} | {_fmt(reg['rmse'])} | {mae} | {cells} |")
    truth = found[0][1]["truth_correlations"]
    lines += [
        "",
        "Correlation of the true grades with each feature on these items: "
        + ", ".join(f"{_FEATURE_SHORT[f]} {_fmt(truth.get(f))}" for f in features) + ".",
        "",
    ]
    return lines


def render(summary: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """Markdown for the whole summary; ``plots`` maps task -> relative PNG path."""
    config = summary.get("config", {})
    lines = ["# thinkstop benchmark report", ""]
    if config:
        n = config.get("n")
        cap = config.get("max_reasoning")
        lines += [
            f"- model: `{config.get('model')}`",
            f"- tasks: {', '.join(config.get('tasks', []))}; "
            f"{'all items of each items file, else 10' if n is None else f'n = {n}'} per "
            f"task, seed {config.get('seed')}",
            f"- budgets: {', '.join(str(b) for b in config.get('budgets', []))}; "
            f"chunk {config.get('chunk_tokens')} tokens; reasoning cap "
            f"{'the paper limits' if cap is None else cap}; runs {config.get('runs', 1)}; "
            f"natural samples {config.get('samples')}",
            f"- policies: {', '.join(f'`{p}`' for p in config.get('policies', []))}",
        ]
        for task, path in sorted((config.get("items_files") or {}).items()):
            lines.append(f"- {task}: items from `{path}`")
        lines.append("")
    lines += [
        "Scores are means with 95% confidence intervals (Wilson for rates, Student's t "
        "otherwise); with several runs each item's runs are averaged first. Trend "
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
