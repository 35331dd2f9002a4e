"""Thinking conventions for local models: ``<think>...</think>`` split, native or prompted.

Models whose chat template mentions ``<think>`` (Qwen3, QwQ, DeepSeek-R1 distills) think by
themselves. Others (the default Qwen2.5-Coder, SmolLM2) are asked to, with a system prompt
and an assistant turn pre-filled with ``<think>\\n``. Either way the generated text is split
here into reasoning and content, one decoded piece at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
PREFILL = OPEN_TAG + "\n"

ThinkingMode = Literal["native", "prompted"]
Segment = tuple[Literal["reasoning", "content"], str]

PROMPTED_SYSTEM = (
    "You are a careful assistant. Before answering, think step by step inside "
    "<think> and </think> tags. After </think>, write only the final answer, briefly."
)

# What a probe and a forced answer append after the reasoning so far.
PROBE_SUFFIX = CLOSE_TAG + "\nFinal answer:"
CLOSE_SUFFIX = CLOSE_TAG + "\n\n"


def detect_thinking(chat_template: str | None) -> ThinkingMode:
    """``native`` when the chat template itself knows the ``<think>`` convention."""
    if chat_template and (OPEN_TAG in chat_template or CLOSE_TAG in chat_template):
        return "native"
    return "prompted"


def close_text(reasoning: str, suffix: str) -> str:
    """``suffix`` after ``reasoning``, on a line of its own."""
    if reasoning and not reasoning.endswith("\n"):
        return "\n" + suffix
    return suffix


def message_text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``messages`` as plain role/content pairs, the shape every chat template expects."""
    return [{"role": str(m["role"]), "content": message_text(m.get("content"))} for m in messages]


def prompted_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """:func:`plain_messages` with the thinking instruction in the system turn (merged
    with the client's own system message when there is one)."""
    plain = plain_messages(messages)
    if plain and plain[0]["role"] in ("system", "developer"):
        first = plain.pop(0)
        system = PROMPTED_SYSTEM + "\n\n" + first["content"]
    else:
        system = PROMPTED_SYSTEM
    return [{"role": "system", "content": system}, *plain]


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could begin ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


SplitState = Literal["undecided", "reasoning", "content"]


class ThinkSplitter:
    """Splits streamed text into reasoning and content at ``</think>``.

    ``start``: ``reasoning`` when the prompt already opened the thinking block (pre-fill,
    or a template that ends in ``<think>``); ``undecided`` when the model may open it
    itself (a leading ``<think>`` opens it; text that does not start with one is content:
    the model chose not to think); ``content`` for an answer after a closed block. Text
    that could be the start of a tag is held back until the next piece decides it;
    whitespace between ``</think>`` and the answer, and any repeated ``</think>`` in the
    answer, and any ``<think>`` or ``</think>`` in the answer, are dropped.
    """

    def __init__(self, start: SplitState) -> None:
        self.state: SplitState = start
        self.consumed = 0  # raw characters eaten before the reasoning began (the open tag)
        self._buf = ""
        self._content_started = False

    @property
    def in_reasoning(self) -> bool:
        return self.state != "content"

    def feed(self, piece: str) -> list[Segment]:
        self._buf += piece
        out: list[Segment] = []
        if self.state == "undecided":
            stripped = self._buf.lstrip()
            if stripped.startswith(OPEN_TAG):
                self.consumed += len(self._buf) - len(stripped) + len(OPEN_TAG)
                self._buf = stripped[len(OPEN_TAG) :]
                self.state = "reasoning"
            elif OPEN_TAG.startswith(stripped):
                return out
            else:
                self.state = "content"
        if self.state == "reasoning":
            at = self._buf.find(CLOSE_TAG)
            if at < 0:
                cut = len(self._buf) - _held_suffix(self._buf, CLOSE_TAG)
                text, self._buf = self._buf[:cut], self._buf[cut:]
                if text:
                    out.append(("reasoning", text))
                return out
            out.append(("reasoning", self._buf[:at]))
            self._buf = self._buf[at + len(CLOSE_TAG) :]
            self.state = "content"
        out.extend(self._content())
        return out

    def _content(self) -> list[Segment]:
        # Thinking markup in the answer (small models repeat the tags) is dropped: the
        # answer a client gets never carries reasoning tags.
        for tag in (CLOSE_TAG, OPEN_TAG):
            self._buf = self._buf.replace(tag, "")
        if not self._content_started:
            self._buf = self._buf.lstrip()
            if not self._buf:
                return []
            self._content_started = True
        cut = len(self._buf) - max(_held_suffix(self._buf, CLOSE_TAG),
                                   _held_suffix(self._buf, OPEN_TAG))
        text, self._buf = self._buf[:cut], self._buf[cut:]
        return [("content", text)] if text else []

    def close(self) -> list[Segment]:
        """End the thinking block from outside (the model ended its turn inside it)."""
        out = self.flush()
        self.state = "content"
        return out

    def flush(self) -> list[Segment]:
        """Whatever is still held back, at the end of the stream."""
        text, self._buf = self._buf, ""
        if self.state == "reasoning":
            return [("reasoning", text)] if text else []
        if not self._content_started:
            text = text.strip()
        return [("content", text)] if text else []
