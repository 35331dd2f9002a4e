"""Reasoning normalisation, in one place, for every upstream chunk shape.

Providers deliver reasoning three ways: a ``reasoning_content`` field (DeepSeek, vLLM,
litellm), a ``reasoning`` field (OpenRouter, newer vLLM, Ollama), or inline ``<think>``
tags inside the content (servers without a reasoning parser, raw completions). Adapters
feed whatever they get through :func:`split_delta` or a :class:`ThinkSplitter` and hand
the rest of the code plain ``(kind, text)`` pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

PieceKind = Literal["reasoning", "content"]
Piece = tuple[PieceKind, str]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class ThinkSplitter:
    """Splits streamed text with inline ``<think>...</think>`` into reasoning and content.

    Tags may be cut across chunks ("<thi", "nk>"), so a possible tag prefix at the end of
    a chunk is held back until the next chunk settles it. ``in_think`` starts the stream
    inside the thinking block (a raw completion whose prompt already opened it).
    """

    def __init__(self, *, in_think: bool = False, open_tag: str = THINK_OPEN,
                 close_tag: str = THINK_CLOSE) -> None:
        self.in_think = in_think
        self.open_tag = open_tag
        self.close_tag = close_tag
        self._held = ""
        self._seen_content = False
        self._after_think = in_think

    def feed(self, text: str) -> list[Piece]:
        """Pieces that are certain so far, in order."""
        buf = self._held + text
        self._held = ""
        out: list[Piece] = []
        while buf:
            if not self.in_think and self._seen_content:
                self._emit(out, buf)  # a <think> block only opens a reply, never mid-answer
                break
            tag = self.close_tag if self.in_think else self.open_tag
            idx = buf.find(tag)
            if idx >= 0:
                self._emit(out, buf[:idx])
                buf = buf[idx + len(tag) :]
                if self.in_think:
                    self._after_think = True
                self.in_think = not self.in_think
                continue
            keep = _partial_suffix(buf, tag)
            self._emit(out, buf[: len(buf) - keep])
            self._held = buf[len(buf) - keep :]
            break
        return out

    def flush(self) -> list[Piece]:
        """Whatever is held back at the end of the stream."""
        out: list[Piece] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[Piece], text: str) -> None:
        if not text:
            return
        kind: PieceKind = "reasoning" if self.in_think else "content"
        if kind == "content" and not self._seen_content:
            if self._after_think:
                text = text.lstrip()  # the blank line between </think> and the answer
            if not text.strip():
                return  # leading whitespace: a <think> block may still open the reply
            self._seen_content = True
        out.append((kind, text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


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
