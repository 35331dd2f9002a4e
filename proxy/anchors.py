"""Example anchoring: curated worked examples added to a model's requests.

Gema et al. (2025) found that a few worked examples remove the drift of the grades
regression task under long reasoning: the model anchors on the examples' relation
instead of the spurious features it reasons its way to. ``thinkstop: {anchors: PATH}`` on
a model adds the examples of a file to every request for it:

- ``anchors_mode: turns`` (default): as few-shot turns, one user turn (the question) and
  one assistant turn (the answer) per example, after the system messages and before the
  conversation;
- ``anchors_mode: system``: as text appended to the system message (one is added when the
  request has none), for models that take few-shot turns badly.

``anchors_max`` (default 8) takes the file's first N examples. A request opts out with
``{"thinkstop": {"anchors": false}}``. The examples' tokens are in the upstream's prompt
tokens like any prompt text, and the decision says how many examples were added and about
how many tokens they are (``anchors``).

The file is JSONL (or a JSON list): one object per example with ``question`` and
``answer`` strings, e.g. ``{"question": "...", "answer": "... <answer>7</answer>"}``.
Parsing and applying are pure; :func:`read_anchors` is the one function that reads a file
(the app calls it once at start, so a bad file stops ``serve`` with a clear error).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

AnchorsMode = Literal["turns", "system"]
DEFAULT_MAX: Final = 8
SYSTEM_HEADER: Final = "Worked examples (question, then the expected answer):"


class AnchorsError(ValueError):
    """An anchors file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Example:
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Anchors:
    """The examples of one file, ready to add to requests."""

    source: str
    examples: tuple[Example, ...]

    def first(self, limit: int) -> Anchors:
        return Anchors(self.source, self.examples[:max(0, limit)])

    def as_turns(self) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = []
        for ex in self.examples:
            turns += [{"role": "user", "content": ex.question},
                      {"role": "assistant", "content": ex.answer}]
        return turns

    def as_text(self) -> str:
        parts = [SYSTEM_HEADER]
        for i, ex in enumerate(self.examples, 1):
            parts.append(f"Example {i}.\nQuestion: {ex.question}\nAnswer: {ex.answer}")
        return "\n\n".join(parts)


def parse_anchors(text: str, source: str) -> Anchors:
    """Examples from JSONL (or one JSON list); errors name ``source`` and the line."""
    stripped = text.strip()
    rows: list[tuple[int, Any]]
    if stripped.startswith("["):
        try:
            rows = list(enumerate(json.loads(stripped), 1))
        except json.JSONDecodeError as exc:
            raise AnchorsError(f"{source}: not valid JSON: {exc.msg} (line {exc.lineno})"
                               ) from None
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise AnchorsError(f"{source}: line {number}: not valid JSON: {exc.msg}"
                                   ) from None
    examples = []
    for number, row in rows:
        if not isinstance(row, dict):
            raise AnchorsError(f"{source}: line {number}: expected an object with "
                               "'question' and 'answer'")
        question, answer = row.get("question"), row.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise AnchorsError(f"{source}: line {number}: 'question' must be a non-empty "
                               "string")
        if not isinstance(answer, str) or not answer.strip():
            raise AnchorsError(f"{source}: line {number}: 'answer' must be a non-empty "
                               "string")
        examples.append(Example(question, answer))
    if not examples:
        raise AnchorsError(f"{source}: no examples (one JSON object per line, with "
                           "'question' and 'answer')")
    return Anchors(source, tuple(examples))


def read_anchors(path: str | Path) -> Anchors:
    """The examples of the file at ``path`` (the one I/O function here)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AnchorsError(f"cannot read anchors file {path}: {detail}") from None
    return parse_anchors(text, str(path))


def apply_anchors(messages: Sequence[dict[str, Any]], anchors: Anchors,
                  mode: AnchorsMode = "turns") -> list[dict[str, Any]]:
    """``messages`` with the examples added (module docstring); the input is not changed."""
    out = [dict(m) for m in messages]
    lead = 0
    while lead < len(out) and out[lead].get("role") in ("system", "developer"):
        lead += 1
    if mode == "turns":
        return out[:lead] + anchors.as_turns() + out[lead:]
    text = anchors.as_text()
    if lead == 0:
        return [{"role": "system", "content": text}, *out]
    last = out[lead - 1]
    content = last.get("content")
    if isinstance(content, list):  # content parts: add one text part
        last["content"] = [*content, {"type": "text", "text": "\n\n" + text}]
    else:
        last["content"] = f"{content or ''}\n\n{text}".lstrip()
    return out


def anchor_text(anchors: Anchors) -> str:
    """All the examples' text, for counting their tokens."""
    return "\n".join(f"{ex.question}\n{ex.answer}" for ex in anchors.examples)
