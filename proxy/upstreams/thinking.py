"""Reasoning and answer, told apart in one place for every upstream and chunk shape.

Providers deliver reasoning three ways: a ``reasoning_content`` field (DeepSeek, vLLM,
litellm), a ``reasoning`` field (OpenRouter, newer vLLM, Ollama), or inline ``<think>``
tags inside the text (servers without a reasoning parser, raw completions, the embedded
model). Adapters feed what they get through :func:`split_delta` or a
:class:`ThinkSplitter` and hand the rest of the code plain ``(kind, text)`` pieces. The
answer a client gets never carries thinking tags.

Also here: how reasoning is closed before an answer (:func:`closing`), and the text of an
OpenAI message's ``content`` (:func:`message_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

PieceKind = Literal["reasoning", "content"]
Piece = tuple[PieceKind, str]
SplitState = Literal["undecided", "reasoning", "content"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def closing(reasoning: str) -> str:
    """What ends ``reasoning`` so that an answer can follow: ``</think>`` on a line of
    its own, then a blank line."""
    lead = "" if not reasoning or reasoning.endswith("\n") else "\n"
    return f"{lead}{THINK_CLOSE}\n\n"


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could begin ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkSplitter:
    """Splits streamed text into reasoning and content at ``<think>`` / ``</think>``.

    ``start``: ``reasoning`` when the prompt already opened the thinking block (a raw
    completion, a pre-filled turn); ``undecided`` when the model may open one itself (a
    leading ``<think>`` opens it; other text is content: the model chose not to think);
    ``content`` for an answer after a closed block. A tag may be cut across pieces
    ("<thi", "nk>"), so text that could begin one is held back until the next piece
    decides it. In the content, whitespace before the answer and any ``<think>`` or
    ``</think>`` (small models repeat them; some servers echo them) are dropped: a block
    only opens a reply, never one mid-answer, and its tags never reach the answer.
    """

    def __init__(self, start: SplitState = "undecided") -> None:
        self.state: SplitState = start
        self.consumed = 0  # raw characters eaten before the reasoning began (the open tag)
        self._buf = ""
        self._content_started = False

    @property
    def in_reasoning(self) -> bool:
        return self.state != "content"

    def feed(self, piece: str) -> list[Piece]:
        """Pieces that are certain so far, in order."""
        self._buf += piece
        out: list[Piece] = []
        if self.state == "undecided":
            stripped = self._buf.lstrip()
            if stripped.startswith(THINK_OPEN):
                self.consumed += len(self._buf) - len(stripped) + len(THINK_OPEN)
                self._buf = stripped[len(THINK_OPEN):]
                self.state = "reasoning"
            elif THINK_OPEN.startswith(stripped):
                return out  # blank so far, or the start of a <think>: wait
            else:
                self.state = "content"
        if self.state == "reasoning":
            at = self._buf.find(THINK_CLOSE)
            if at < 0:
                cut = len(self._buf) - _held_suffix(self._buf, THINK_CLOSE)
                text, self._buf = self._buf[:cut], self._buf[cut:]
                if text:
                    out.append(("reasoning", text))
                return out
            # Even when empty: the tokens of the tag itself are reasoning, and a counter
            # attaches them to this piece.
            out.append(("reasoning", self._buf[:at]))
            self._buf = self._buf[at + len(THINK_CLOSE):]
            self.state = "content"
        out.extend(self._content())
        return out

    def _content(self) -> list[Piece]:
        for tag in (THINK_CLOSE, THINK_OPEN):
            self._buf = self._buf.replace(tag, "")
        if not self._content_started:
            self._buf = self._buf.lstrip()
            if not self._buf:
                return []
            self._content_started = True
        cut = len(self._buf) - max(_held_suffix(self._buf, THINK_CLOSE),
                                   _held_suffix(self._buf, THINK_OPEN))
        text, self._buf = self._buf[:cut], self._buf[cut:]
        return [("content", text)] if text else []

    def close(self) -> list[Piece]:
        """End the thinking block from outside (the model ended its turn inside it)."""
        out = self.flush()
        self.state = "content"
        return out

    def flush(self) -> list[Piece]:
        """Whatever is still held back, at the end of the stream."""
        text, self._buf = self._buf, ""
        if self.state == "reasoning":
            return [("reasoning", text)] if text else []
        if not self._content_started:
            text = text.strip()
        return [("content", text)] if text else []


def delta_reasoning(delta: Any) -> str | None:
    """The reasoning text of one delta, from ``reasoning_content`` or ``reasoning``.

    ``delta`` may be a mapping (raw JSON) or an object with attributes (an SDK model).
    """
    for name in ("reasoning_content", "reasoning"):
        value = delta.get(name) if isinstance(delta, Mapping) else getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def split_delta(delta: Any, splitter: ThinkSplitter) -> list[Piece]:
    """Normalise one chat delta into pieces: field reasoning first, then tagged content."""
    pieces: list[Piece] = []
    reasoning = delta_reasoning(delta)
    if reasoning:
        pieces.append(("reasoning", reasoning))
    if isinstance(delta, Mapping):
        content = delta.get("content")
    else:
        content = getattr(delta, "content", None)
    if isinstance(content, str) and content:
        pieces.extend(splitter.feed(content))
    return pieces


# Content-part types that carry text: chat ("text") and Responses API input/output parts.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def message_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or the text of its parts
    (``text``, ``input_text``, ``output_text``; images and audio carry none)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") in _TEXT_PARTS:
            parts.append(str(part.get("text", "")))
        elif isinstance(part, str):
            parts.append(part)
    return "".join(parts)
