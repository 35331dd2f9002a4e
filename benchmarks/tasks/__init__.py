"""The task families of the built-in benchmark, by name.

Names: ``misleading_math``, ``misleading_python``, ``famous_paradoxes``,
``grades_regression``, ``zebra_puzzles``, ``zebra_generated``, ``ai_risk`` (all 16
subsets in turn) and ``ai_risk:<subset>``. ``--n`` items are taken per task name, with
difficulty levels in turn (round-robin), so the first items of a larger ``n`` are the
same items as a smaller ``n`` with the same seed. ``Options.items`` maps a task to a JSONL
file of the paper's released items (:mod:`.released`), run instead of the family's own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from thinkstop.benchmarks.data import AI_RISK_SUBSETS
from thinkstop.benchmarks.tasks.base import Item, Score, score_item

DEFAULT_TASKS: Final = (
    "misleading_math",
    "misleading_python",
    "famous_paradoxes",
    "grades_regression",
    "zebra_puzzles",
    "ai_risk:survival-instinct",
)


# Items per task when no --n is given (an items file gives all its items instead).
DEFAULT_N: Final = 10


@dataclass(frozen=True, slots=True)
class Options:
    """Where a loader finds its data: the upstream files (``data_dir``), a real grades
    survey (``grades_csv``), and released item files by task name (``items``)."""

    data_dir: Path | None = None
    grades_csv: Path | None = None
    items: dict[str, Path] = field(default_factory=dict)


Loader = Callable[[str, int, int, Options], list[Item]]


@dataclass(frozen=True, slots=True)
class Family:
    """A task family: what its difficulty levels are called, what its score is, and the
    loader of its items (``module:function(task, n, seed, options)``, imported on
    demand: generators and data loaders are only loaded for the families a run asks for).
    """

    name: str
    level_name: str
    metric: str
    loader: str

    def load(self, task: str, n: int, seed: int, options: Options) -> list[Item]:
        module, _, attr = self.loader.partition(":")
        load: Loader = getattr(importlib.import_module(module), attr)
        return load(task, n, seed, options)


FAMILY_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a task family (the same kind of registry as the policies' and adapters')."""
    FAMILY_REGISTRY[family.name] = family
    return family


_TASKS = "thinkstop.benchmarks.tasks"
for _family in (
    Family("misleading_math", "num_distractors", "accuracy", f"{_TASKS}.counting:load"),
    Family("misleading_python", "num_distractors", "accuracy", f"{_TASKS}.counting:load"),
    Family("famous_paradoxes", "num_distractors", "accuracy", f"{_TASKS}.paradoxes:load"),
    Family("grades_regression", "examples_per_prompt", "neg_mae", f"{_TASKS}.grades:load"),
    Family("zebra_puzzles", "grid_size", "accuracy", f"{_TASKS}.zebra:load"),
    Family("zebra_generated", "grid_size", "accuracy", f"{_TASKS}.zebra_gen:load"),
    Family("ai_risk", "subset", "behavior_rate", f"{_TASKS}.ai_risk:load"),
):
    register_family(_family)

FAMILIES: Final = tuple(FAMILY_REGISTRY)
LEVEL_NAMES: Final = {f.name: f.level_name for f in FAMILY_REGISTRY.values()}


def family(task: str) -> str:
    """The family of a task name (``ai_risk:survival-instinct`` -> ``ai_risk``)."""
    return task.split(":", 1)[0]


def level_key(level: str) -> tuple[int, float, str]:
    """Sort key of difficulty levels: numeric ones by value, then named ones."""
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def task_names() -> list[str]:
    return [*FAMILY_REGISTRY, *(f"ai_risk:{s}" for s in AI_RISK_SUBSETS)]


def check_task(task: str) -> str:
    if task not in task_names():
        raise ValueError(
            f"unknown task {task!r}; valid tasks: {', '.join(FAMILY_REGISTRY)}, "
            "ai_risk:<subset>"
        )
    return task


def metric(task: str) -> str:
    """What the summary reports as the score of a task."""
    return FAMILY_REGISTRY[family(task)].metric


def load_items(
    task: str, n: int | None, seed: int, options: Options | None = None
) -> list[Item]:
    """``n`` items of ``task`` for ``seed``: from its items file when ``options.items``
    names one (all of them when ``n`` is None), else from the family's loader
    (:data:`DEFAULT_N` when ``n`` is None)."""
    check_task(task)
    options = options or Options()
    chosen = FAMILY_REGISTRY[family(task)]
    path = options.items.get(task)
    if path is not None:
        from thinkstop.benchmarks.tasks.released import load_released

        return load_released(task, path, n, chosen.name, chosen.level_name)
    return chosen.load(task, DEFAULT_N if n is None else n, seed, options)


__all__ = [
    "DEFAULT_N",
    "DEFAULT_TASKS",
    "FAMILIES",
    "FAMILY_REGISTRY",
    "LEVEL_NAMES",
    "Family",
    "Item",
    "Options",
    "Score",
    "check_task",
    "family",
    "load_items",
    "metric",
    "register_family",
    "score_item",
    "task_names",
]
