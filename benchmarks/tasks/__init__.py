"""The task families of the built-in benchmark, by name.

Names: ``misleading_math``, ``misleading_python``, ``famous_paradoxes``,
``grades_regression``, ``zebra_puzzles``, ``zebra_generated``, ``ai_risk`` (all 16
subsets in turn) and ``ai_risk:<subset>``. ``--n`` items are taken per task name, with
difficulty levels in turn (round-robin), so the first items of a larger ``n`` are the
same items as a smaller ``n`` with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from thinkstop.benchmarks.data import AI_RISK_SUBSETS
from thinkstop.benchmarks.tasks.base import Item, Score, score_item

FAMILIES: Final = (
    "misleading_math",
    "misleading_python",
    "famous_paradoxes",
    "grades_regression",
    "zebra_puzzles",
    "zebra_generated",
    "ai_risk",
)
LEVEL_NAMES: Final = {
    "misleading_math": "num_distractors",
    "misleading_python": "num_distractors",
    "famous_paradoxes": "num_distractors",
    "grades_regression": "examples_per_prompt",
    "zebra_puzzles": "grid_size",
    "zebra_generated": "grid_size",
    "ai_risk": "subset",
}
DEFAULT_TASKS: Final = (
    "misleading_math",
    "misleading_python",
    "famous_paradoxes",
    "grades_regression",
    "zebra_puzzles",
    "ai_risk:survival-instinct",
)


@dataclass(frozen=True, slots=True)
class Options:
    data_dir: Path | None = None
    grades_csv: Path | None = None


def family(task: str) -> str:
    """The family of a task name (``ai_risk:survival-instinct`` -> ``ai_risk``)."""
    return task.split(":", 1)[0]


def task_names() -> list[str]:
    return [*FAMILIES, *(f"ai_risk:{s}" for s in AI_RISK_SUBSETS)]


def check_task(task: str) -> str:
    if task not in task_names():
        raise ValueError(
            f"unknown task {task!r}; valid tasks: {', '.join(FAMILIES)}, ai_risk:<subset>"
        )
    return task


def metric(task: str) -> str:
    """What the summary reports as the score of a task."""
    fam = family(task)
    if fam == "grades_regression":
        return "neg_mae"
    if fam == "ai_risk":
        return "behavior_rate"
    return "accuracy"


def load_items(task: str, n: int, seed: int, options: Options | None = None) -> list[Item]:
    """``n`` items of ``task`` for ``seed`` (generators are imported on demand)."""
    opts = options or Options()
    check_task(task)
    fam = family(task)
    if fam in ("misleading_math", "misleading_python"):
        from thinkstop.benchmarks.tasks import counting

        return (
            counting.misleading_math(n, seed)
            if fam == "misleading_math"
            else (counting.misleading_python(n, seed))
        )
    if fam == "famous_paradoxes":
        from thinkstop.benchmarks.tasks.paradoxes import famous_paradoxes

        return famous_paradoxes(n, seed)
    if fam == "grades_regression":
        from thinkstop.benchmarks.tasks import grades

        if opts.grades_csv is not None:
            students = grades.read_csv(opts.grades_csv)
            return grades.grades_regression(n, seed, students, source=str(opts.grades_csv))
        return grades.grades_regression(n, seed)
    if fam == "zebra_puzzles":
        from thinkstop.benchmarks.tasks.zebra import zebra_puzzles

        return zebra_puzzles(n, seed, opts.data_dir)
    if fam == "zebra_generated":
        from thinkstop.benchmarks.tasks.zebra_gen import zebra_generated

        return zebra_generated(n, seed)
    from thinkstop.benchmarks.tasks.ai_risk import ai_risk

    subset = task.split(":", 1)[1] if ":" in task else None
    return ai_risk(n, seed, subset, opts.data_dir)


__all__ = [
    "DEFAULT_TASKS",
    "FAMILIES",
    "LEVEL_NAMES",
    "Item",
    "Options",
    "Score",
    "check_task",
    "family",
    "load_items",
    "metric",
    "score_item",
    "task_names",
]
