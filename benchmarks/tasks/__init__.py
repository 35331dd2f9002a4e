"""The task families of the built-in benchmark, by name.

Names: ``misleading_math``, ``misleading_python``, ``famous_paradoxes``,
``grades_regression``, ``zebra_puzzles``, ``zebra_generated``, ``ai_risk`` (all 16
subsets in turn) and ``ai_risk:<subset>``. ``--n`` items are taken per task name, with
difficulty levels in turn (round-robin), so the first items of a larger ``n`` are the
same items as a smaller ``n`` with the same seed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Options:
    data_dir: Path | None = None
    grades_csv: Path | None = None


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


def load_items(task: str, n: int, seed: int, options: Options | None = None) -> list[Item]:
    """``n`` items of ``task`` for ``seed``."""
    check_task(task)
    return FAMILY_REGISTRY[family(task)].load(task, n, seed, options or Options())


__all__ = [
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
