"""How a local model thinks: natively, or because it is asked to.

Models whose chat template mentions ``<think>`` (Qwen3, QwQ, DeepSeek-R1 distills) think by
themselves. Others (the default Qwen2.5-Coder, the Gemma 3 test model) are asked to, with a
system prompt and an assistant turn pre-filled with ``<think>\\n``. Either way the
generated text is split by :class:`thinkstop.proxy.upstreams.thinking.ThinkSplitter`.
"""

from __future__ import annotations

from typing import Any, Literal

from thinkstop.proxy.upstreams.thinking import THINK_CLOSE, THINK_OPEN, message_text

PREFILL = THINK_OPEN + "\n"

ThinkingMode = Literal["native", "prompted"]

PROMPTED_SYSTEM = (
    "You are a careful assistant. Before answering, think step by step inside "
    "<think> and </think> tags. After </think>, write only the final answer, briefly."
)


def detect_thinking(chat_template: str | None) -> ThinkingMode:
    """``native`` when the chat template itself knows the ``<think>`` convention."""
    if chat_template and (THINK_OPEN in chat_template or THINK_CLOSE in chat_template):
        return "native"
    return "prompted"


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
