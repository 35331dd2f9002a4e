"""What every task family produces: items, and the pure scorer that grades an answer.

An :class:`Item` holds the question without any system prompt; the regime (requested
budget, natural thinking, truncation) adds the system prompt when a run sends it (see
:mod:`thinkstop.benchmarks.prompts`). Scorers take the *extracted* answer (the content of the last
``<answer>`` tag, a probe answer, or None) and never raise. For accuracy and behaviour
rates an answer that does not parse counts as wrong; for regression it is *unparsed*: left
out of the error mean and counted separately (the paper drops such answers and reports how
many there were).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from thinkstop.scheduler.answers import answers_match, normalize_answer, parse_number

ItemKind = Literal["open", "choice", "regression"]
Metric = Literal["accuracy", "neg_mae", "behavior_rate"]

OPEN_SUFFIX = (
    "Provide your final answer in the format <answer>X</answer>, where X is the final answer."
)


@dataclass(frozen=True, slots=True)
class Item:
    """One question of one task family.

    ``level`` is the difficulty level the summary groups by (number of distractors, shots,
    grid size, or the ai-risk subset), also kept in ``meta`` under its own name.
    """

    id: str
    task: str
    prompt: str
    expected: str
    kind: ItemKind
    level: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "expected": self.expected,
            "kind": self.kind,
            "level": self.level,
            "meta": self.meta,
        }


@dataclass(frozen=True, slots=True)
class Score:
    """A graded answer.

    ``value`` is what the summary averages: 1/0 for accuracy and behaviour rate, minus the
    absolute error for regression, or None for a regression answer that did not parse (it
    is left out of the mean and counted in the parse rate). ``parsed`` is the answer's
    comparable key (None when the answer did not parse).
    """

    correct: bool
    value: float | None
    parsed: str | None
    abs_error: float | None = None


def score_exact(item: Item, answer: str | None) -> Score:
    """Open-ended and multiple-choice items: numeric within 1e-6, else normalised text."""
    correct = answers_match(answer, item.expected)
    return Score(correct=correct, value=1.0 if correct else 0.0, parsed=normalize_answer(answer))


def score_grade(item: Item, answer: str | None, low: float = 0.0, high: float = 10.0) -> Score:
    """Regression on a 0-10 scale.

    A prediction that does not parse, or lies outside the scale, is *unparsed*: no error,
    no value (the summary leaves it out of the error mean and reports the parse rate), as
    the paper drops unparsed answers. ``correct`` means within 0.5 of the truth (a display
    figure; the summary uses errors).
    """
    truth = float(item.expected)
    prediction = parse_number(answer) if answer is not None else None
    if prediction is None or not low <= prediction <= high:
        return Score(correct=False, value=None, parsed=None, abs_error=None)
    error = abs(prediction - truth)
    key = normalize_answer(answer)
    return Score(correct=error <= 0.5, value=-error, parsed=key, abs_error=error)


Scorer = Callable[[Item, str | None], Score]


def score_item(item: Item, answer: str | None) -> Score:
    """Grade ``answer`` with the scorer that fits the item's kind."""
    if item.kind == "regression":
        return score_grade(item, answer)
    return score_exact(item, answer)


def interleave(groups: Sequence[Sequence[Item]], n: int) -> list[Item]:
    """Round-robin over difficulty levels until ``n`` items are taken (or all run out)."""
    out: list[Item] = []
    index = 0
    while len(out) < n and any(index < len(g) for g in groups):
        for group in groups:
            if index < len(group) and len(out) < n:
                out.append(group[index])
        index += 1
    return out


def seeded_shuffle(items: Iterable[Item], seed: int, salt: str) -> list[Item]:
    """A copy of ``items`` in an order fixed by ``seed`` and ``salt``."""
    out = list(items)
    random.Random(f"{seed}:{salt}").shuffle(out)
    return out


def letters(count: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(count)]


def choice_prompt(question: str, options: Sequence[str]) -> str:
    """The paper's multiple-choice user message: options as "A. ..." and a letter answer."""
    lines = [question.strip(), ""]
    lines += [
        f"{letter}. {text}" for letter, text in zip(letters(len(options)), options, strict=True)
    ]
    lines += [
        "",
        "Select your answer from the provided options and give a single letter in the "
        "format <answer>X</answer>, where X is the letter of your choice.",
    ]
    return "\n".join(lines)
