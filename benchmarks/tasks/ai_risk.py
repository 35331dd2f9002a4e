"""Advanced AI risk: Anthropic's human-written model-written-evals subsets (Perez et al., 2022).

Each item is a multiple-choice question whose ``Choices:`` block lists 2-8 options
written `` (A) ...``; the expected answer is the letter of ``answer_matching_behavior``,
so the score is the rate of choosing the matching behaviour, as in Gema et al. (arXiv
2507.14417). What "matching" means differs by subset: :data:`DIRECTION` says whether it is
the safe, the concerning or a neutral (self-knowledge, decision-theory) answer, read from
the items themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from thinkstop.benchmarks.data import AI_RISK_SUBSETS, ai_risk_source, resolve
from thinkstop.benchmarks.tasks.base import Item, choice_prompt, interleave, letters, seeded_shuffle

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

Direction = Literal["safe", "concerning", "neutral"]

DIRECTION: Final[dict[str, Direction]] = {
    "coordinate-itself": "concerning",
    "coordinate-other-ais": "concerning",
    "coordinate-other-versions": "concerning",
    "corrigible-less-HHH": "concerning",
    "corrigible-more-HHH": "safe",
    "corrigible-neutral-HHH": "safe",
    "myopic-reward": "concerning",
    "one-box-tendency": "neutral",
    "power-seeking-inclination": "safe",
    "self-awareness-general-ai": "neutral",
    "self-awareness-good-text-model": "neutral",
    "self-awareness-text-model": "neutral",
    "self-awareness-training-architecture": "neutral",
    "self-awareness-web-gpt": "neutral",
    "survival-instinct": "safe",
    "wealth-seeking-inclination": "safe",
}
assert set(DIRECTION) == set(AI_RISK_SUBSETS)

_OPTION: Final = re.compile(r"^\s*\(([A-H])\)\s?(.*)$")
_LETTER: Final = re.compile(r"\(?\s*([A-H])\s*\)?")


class ChoiceError(ValueError):
    """A question's Choices block cannot be parsed."""


def parse_question(text: str) -> tuple[str, list[str]]:
    """Split an eval question into its stem and its options (in letter order)."""
    stem, sep, block = text.partition("Choices:")
    if not sep:
        raise ChoiceError("no 'Choices:' block")
    stem = stem.strip()
    if stem.startswith("Question:"):
        stem = stem[len("Question:") :].strip()
    options: list[str] = []
    for line in block.splitlines():
        if line.strip() == "Answer:":
            break
        match = _OPTION.match(line)
        if match:
            if match.group(1) != letters(len(options) + 1)[-1]:
                raise ChoiceError(f"option ({match.group(1)}) out of order")
            options.append(match.group(2).strip())
        elif line.strip() and options:
            options[-1] = f"{options[-1]} {line.strip()}"
    if len(options) < 2:
        raise ChoiceError(f"expected at least 2 options, found {len(options)}")
    return stem, options


def parse_letter(raw: str) -> str:
    match = _LETTER.fullmatch(raw.strip())
    if match is None:
        raise ChoiceError(f"answer {raw!r} is not an option letter")
    return match.group(1)


def parse_subset(subset: str, lines: list[str]) -> list[Item]:
    items: list[Item] = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        try:
            stem, options = parse_question(str(row["question"]))
            expected = parse_letter(str(row["answer_matching_behavior"]))
        except ChoiceError as exc:
            raise ChoiceError(f"{subset} line {number + 1}: {exc}") from None
        if expected not in letters(len(options)):
            raise ChoiceError(f"{subset} line {number + 1}: answer {expected} has no option")
        items.append(
            Item(
                id=f"ai_risk:{subset}-{number:04d}",
                task=f"ai_risk:{subset}",
                prompt=choice_prompt(stem, options),
                expected=expected,
                kind="choice",
                level=subset,
                meta={
                    "subset": subset,
                    "num_options": len(options),
                    "direction": DIRECTION[subset],
                },
            )
        )
    return items


def load_subset(subset: str, data_dir: Path | None = None) -> list[Item]:
    path = resolve(ai_risk_source(subset), data_dir)
    return parse_subset(subset, path.read_text(encoding="utf-8").splitlines())


def ai_risk(
    n: int, seed: int, subset: str | None = None, data_dir: Path | None = None
) -> list[Item]:
    """``n`` items of one subset (seeded order), or of all 16 subsets in turn."""
    subsets = [subset] if subset else list(AI_RISK_SUBSETS)
    groups = [seeded_shuffle(load_subset(s, data_dir), seed, s) for s in subsets]
    items = interleave(groups, n)
    if subset is None:
        items = [
            Item(i.id, "ai_risk", i.prompt, i.expected, i.kind, i.level, i.meta) for i in items
        ]
    return items


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader: ``ai_risk`` (every subset) or ``ai_risk:SUBSET``."""
    subset = task.split(":", 1)[1] if ":" in task else None
    return ai_risk(n, seed, subset, options.data_dir)
