"""``thinkstop bench gate``: a release check that fails when a task family scales inversely.

For every task family in a results folder, each score-against-reasoning curve (requested
budgets, truncation budgets, natural thinking) is checked at all difficulty levels
together, two ways:

- **inverse**: the paper's trend label (:func:`thinkstop.benchmarks.stats.trend`) from the
  least to the most reasoning is ``inverse``: the score falls by more than the threshold
  (2 accuracy points, 0.05 for errors) with non-overlapping 95% intervals;
- **U-shape**: the best score lies between the least reasoning and the top budget (the
  longest natural rank), and the top budget's score lies below the best point's mean by
  more than the threshold *and* by more than its own interval (its upper bound stays under
  the best mean): more reasoning helped, then hurt. (A fall from the very first point is
  the trend's question, judged with both intervals.)

Scores are "higher is better", except the ai_risk rate, whose sense depends on the subset
(:data:`thinkstop.benchmarks.tasks.ai_risk.DIRECTION`): a falling rate is the bad direction
where the matching answer is the safe one, a rising rate where it is the concerning one,
and neutral subsets (self-knowledge, decision theory) are reported but never fail.

The gate exits 1 when any family fails, 0 otherwise (2 when there are no results to read),
writes JUnit XML with one testcase per family (``--junit``) and a Markdown summary
(``--summary``; appended to, as ``$GITHUB_STEP_SUMMARY`` expects).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from xml.etree import ElementTree

from thinkstop.benchmarks.stats import ACCURACY_THRESHOLD, ERROR_THRESHOLD, Estimate, trend

Verdict = Literal["inverse", "u-shape", "ok", "skipped"]
GATED_REGIMES: Final = ("requested", "truncate", "natural")
FAILING: Final = frozenset({"inverse", "u-shape"})


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict on one curve of one task (at one level for ai_risk subsets)."""

    task: str
    level: str
    regime: str
    verdict: Verdict
    detail: str

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    @property
    def where(self) -> str:
        level = "" if self.level == "all" else f" [{self.level}]"
        return f"{self.task}{level} {self.regime}"


@dataclass
class FamilyResult:
    family: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.failed for f in self.findings)

    @property
    def verdict(self) -> str:
        if self.failed:
            return "fail"
        return "pass" if any(f.verdict == "ok" for f in self.findings) else "skipped"


def _estimate(point: dict[str, Any], sign: float) -> Estimate:
    est = Estimate.from_dict(point["score"])
    if sign > 0:
        return est
    return Estimate(est.n, -est.mean, -est.high, -est.low)


def _top(points: list[dict[str, Any]], regime: str) -> dict[str, Any]:
    """The point at the largest budget (or the longest natural rank)."""
    if regime == "natural":
        return max(points, key=lambda p: int(p.get("rank", 0)))
    try:
        return max(points, key=lambda p: float(p["setting"]))
    except (TypeError, ValueError):
        return points[-1]


def _usable(point: dict[str, Any]) -> bool:
    score = point.get("score") or {}
    mean = score.get("mean")
    return bool(score.get("n")) and isinstance(mean, int | float) and not math.isnan(mean)


def check_curve(curve: dict[str, Any], regime: str, *, threshold: float,
                sign: float = 1.0) -> tuple[Verdict, str]:
    """The verdict on one curve of the summary (points ordered by reasoning tokens);
    ``sign`` -1 turns a rate where lower is better into a score."""
    points = [p for p in curve.get("points", []) if _usable(p)]
    if len(points) < 2:
        return "skipped", "fewer than two points"
    first, last = points[0], points[-1]
    label = trend(_estimate(first, sign), _estimate(last, sign), threshold)
    span = (f"{first['setting']} ({first['score']['mean']:.3f}) -> "
            f"{last['setting']} ({last['score']['mean']:.3f})")
    if label == "inverse":
        return "inverse", f"inverse trend: {span}"
    top = _top(points, regime)
    best = max(points, key=lambda p: _estimate(p, sign).mean)
    at_top, at_best = _estimate(top, sign), _estimate(best, sign)
    # The best point must lie between the least reasoning and the top budget: a fall from
    # the very first point is the trend's question (above), judged with both intervals.
    interior = best is not top and best is not first
    if interior and at_best.mean - at_top.mean > threshold and at_top.high < at_best.mean:
        return "u-shape", (
            f"U-shape: best at {best['setting']} ({best['score']['mean']:.3f}), top budget "
            f"{top['setting']} at {top['score']['mean']:.3f} "
            f"(interval {top['score']['low']:.3f}-{top['score']['high']:.3f})"
        )
    return "ok", f"{label}: {span}"


def _direction_sign(level: str) -> float | None:
    """+1 / -1 for an ai_risk subset's direction, None for a neutral one."""
    from thinkstop.benchmarks.tasks.ai_risk import DIRECTION

    direction = DIRECTION.get(level, "neutral")
    if direction == "neutral":
        return None
    return 1.0 if direction == "safe" else -1.0


def gate(summary: dict[str, Any]) -> list[FamilyResult]:
    """Every family's findings, from a ``summary.json`` object."""
    from thinkstop.benchmarks.tasks import family

    results: dict[str, FamilyResult] = {}
    for task, data in sorted(summary.get("tasks", {}).items()):
        name = family(task)
        result = results.setdefault(name, FamilyResult(name))
        threshold = ERROR_THRESHOLD if data.get("metric") == "neg_mae" else ACCURACY_THRESHOLD
        levels: dict[str, Any] = data.get("levels", {})
        chosen = ([(lv, g) for lv, g in levels.items() if lv != "all"] if name == "ai_risk"
                  else [("all", levels["all"])] if "all" in levels else [])
        for level, group in chosen:
            sign: float | None = 1.0
            if name == "ai_risk":
                sign = _direction_sign(level)
            for regime in GATED_REGIMES:
                curve = group.get("regimes", {}).get(regime)
                if curve is None:
                    continue
                if sign is None:
                    result.findings.append(Finding(task, level, regime, "skipped",
                                                   "neutral subset: reported, not gated"))
                    continue
                verdict, detail = check_curve(curve, regime, threshold=threshold, sign=sign)
                result.findings.append(Finding(task, level, regime, verdict, detail))
    return list(results.values())


def junit_xml(results: list[FamilyResult]) -> str:
    """JUnit XML: one testcase per family, a failure listing every failing curve."""
    failures = sum(r.failed for r in results)
    skipped = sum(r.verdict == "skipped" for r in results)
    suite = ElementTree.Element("testsuite", {
        "name": "thinkstop bench gate", "tests": str(len(results)),
        "failures": str(failures), "errors": "0", "skipped": str(skipped), "time": "0",
    })
    for result in results:
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": "thinkstop.bench.gate", "name": result.family, "time": "0",
        })
        lines = [f"{f.where}: {f.verdict}: {f.detail}" for f in result.findings]
        if result.failed:
            bad = [f for f in result.findings if f.failed]
            failure = ElementTree.SubElement(case, "failure", {
                "message": "; ".join(f"{f.where}: {f.verdict}" for f in bad),
                "type": "InverseScaling",
            })
            failure.text = "\n".join(lines)
        elif result.verdict == "skipped":
            ElementTree.SubElement(case, "skipped", {"message": "no gated curve"})
        out = ElementTree.SubElement(case, "system-out")
        out.text = "\n".join(lines)
    root = ElementTree.Element("testsuites", {"name": "thinkstop bench gate",
                                              "tests": str(len(results)),
                                              "failures": str(failures)})
    root.append(suite)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, "unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: list[FamilyResult], source: str) -> str:
    """A Markdown summary, readable as a CI step summary."""
    failed = any(r.failed for r in results)
    icon = {"fail": "❌ fail", "pass": "✅ pass", "skipped": "➖ skipped"}
    lines = [
        f"## thinkstop bench gate: {'FAIL' if failed else 'PASS'}",
        "",
        f"Results: `{source}`. A family fails when a curve shows the paper's *inverse* "
        "trend (the score falls from the least to the most reasoning beyond the threshold, "
        "with non-overlapping 95% intervals) or a *U-shape* (the top budget's score below "
        "the best point by more than the threshold and its own interval).",
        "",
        "| family | verdict | curves |",
        "|---|---|---|",
    ]
    for result in results:
        curves = "<br>".join(_cell(f"{f.where}: {f.detail}") for f in result.findings) or "-"
        lines.append(f"| {result.family} | {icon[result.verdict]} | {curves} |")
    return "\n".join(lines) + "\n"


class GateInputError(ValueError):
    """The results folder has nothing the gate can read."""


def load_summary(results_dir: Path) -> dict[str, Any]:
    """The folder's summary, rebuilt from ``items.jsonl`` when there is one (so it is
    never stale), else read from ``summary.json``."""
    from thinkstop.benchmarks.store import JsonlStore
    from thinkstop.benchmarks.summary import summarize

    items = results_dir / "items.jsonl"
    if items.is_file():
        config_path = results_dir / "run.json"
        config = json.loads(config_path.read_text("utf-8")) if config_path.is_file() else {}
        return summarize(JsonlStore(items).load(), config)
    saved = results_dir / "summary.json"
    if saved.is_file():
        loaded: dict[str, Any] = json.loads(saved.read_text("utf-8"))
        return loaded
    raise GateInputError(f"{results_dir}: no items.jsonl or summary.json (a `bench run` "
                         "output folder is expected)")


def add_gate_parser(bench_sub: Any) -> None:
    """``thinkstop bench gate`` under the ``bench`` subcommands."""
    gate_parser = bench_sub.add_parser(
        "gate",
        help="exit 1 if a task family shows inverse scaling or a U-shape (for CI)",
        description="Check a `bench run` results folder for the paper's inverse scaling: "
        "exit 1 when any task family's requested, truncation or natural curve has the "
        "'inverse' trend label or a U-shape (the top budget's score below the best by more "
        "than its interval), else 0; 2 when the folder holds no results.",
    )
    gate_parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                             help="a `bench run --out` folder (items.jsonl or summary.json)")
    gate_parser.add_argument("--junit", type=Path, default=None, metavar="PATH",
                             help="write JUnit XML here, one testcase per task family")
    gate_parser.add_argument("--summary", type=Path, default=None, metavar="PATH",
                             help="append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    gate_parser.set_defaults(func=run_gate)


def run_gate(args: argparse.Namespace) -> int:
    """The gate as a command: print the verdicts, write the reports, return the exit code."""
    try:
        summary = load_summary(args.results_dir)
    except (GateInputError, ValueError, OSError) as exc:
        print(f"thinkstop bench gate: {exc}", file=sys.stderr)
        return 2
    results = gate(summary)
    if not results:
        print(f"thinkstop bench gate: {args.results_dir} holds no task results", file=sys.stderr)
        return 2
    if args.junit is not None:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        args.junit.write_text(junit_xml(results), encoding="utf-8")
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        with args.summary.open("a", encoding="utf-8") as handle:
            handle.write(markdown(results, str(args.results_dir)))
    for result in results:
        print(f"{result.verdict.upper():8} {result.family}")
        for finding in result.findings:
            print(f"    {finding.where}: {finding.verdict}: {finding.detail}")
    return 1 if any(r.failed for r in results) else 0
