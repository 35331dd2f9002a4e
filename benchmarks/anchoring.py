"""The worked examples of the ``anchored`` regime (the paper's few-shot mitigation).

Gema et al. (2025) report that few-shot examples keep the grades task anchored to its
real signal as reasoning grows (Opus 4's predictions stay near r = 0.85 with study hours
at 16 shots, where zero-shot they drift from 0.43 to 0.22). The ``anchored`` regime runs
the same items with natural thinking and worked examples added the way the proxy's
``thinkstop: {anchors: PATH}`` adds them (:mod:`thinkstop.proxy.anchors`: user/assistant
turns after the system message), so the benchmark measures the product feature itself.

The examples come from ``--anchors FILE`` (the proxy's file format), or else from the
task's own generator at another seed: the plainest level's items (grades: zero-shot
students of another synthetic population), each answered with its known answer in the
``<answer>`` format the prompts ask for. An example whose prompt is also one of the run's
items is skipped, so no item is answered in its own anchors. Behaviour tasks (ai_risk)
have no right answer to show, so they need a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from thinkstop.benchmarks.tasks import Options, level_key, load_items, metric
from thinkstop.benchmarks.tasks.base import Item
from thinkstop.proxy.anchors import Anchors, Example, read_anchors

# The generator seed of the examples is offset from the run's, so they are other items.
SEED_OFFSET: Final = 7919


class AnchorsUnavailable(ValueError):
    """The anchored regime cannot build examples for a task."""


def generated_anchors(task: str, seed: int, count: int, options: Options,
                      exclude: Sequence[Item] = ()) -> Anchors:
    """``count`` worked examples of ``task`` from its generator (module docstring)."""
    if metric(task) == "behavior_rate":
        raise AnchorsUnavailable(
            f"{task} scores a behaviour, not a right answer, so it has no worked examples "
            "to generate; pass --anchors FILE (JSONL of {\"question\", \"answer\"}) or "
            "leave it out of the anchored regime")
    taken = {i.prompt for i in exclude}
    # Ask for more than needed: levels interleave and some prompts may be the run's own.
    pool = load_items(task, max(4 * count, 12), seed + SEED_OFFSET, options)
    plainest = min((i.level for i in pool), key=level_key, default=None)
    examples = [Example(i.prompt, f"<answer>{i.expected}</answer>")
                for i in pool if i.level == plainest and i.prompt not in taken]
    if not examples:
        raise AnchorsUnavailable(f"{task}: its generator gave no items to use as examples")
    return Anchors(f"{task} generator (seed {seed + SEED_OFFSET})", tuple(examples[:count]))


def run_anchors(tasks: Sequence[str], items: Sequence[Item], *, path: str | None,
                count: int, seed: int, options: Options) -> dict[str, Anchors]:
    """The examples each task's anchored runs get: the file's first ``count`` for every
    task, else each task's generated ones."""
    if path is not None:
        shared = read_anchors(path).first(count)
        return dict.fromkeys(tasks, shared)
    return {task: generated_anchors(task, seed, count, options,
                                    [i for i in items if i.task == task])
            for task in tasks}

