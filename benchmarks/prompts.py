"""The paper's prompts (Gema et al., arXiv 2507.14417) and each provider's native budget.

A run sends one system prompt per regime: ``budget=None`` is natural thinking (no budget),
``0`` asks for no thinking at all, ``B > 0`` states a thinking budget of about B tokens
with the paper's keyword ("Think" / "Think harder" / "Ultrathink"). Where the provider has
a native control it is set too (Anthropic ``thinking.budget_tokens``, OpenAI
``reasoning_effort``); other models get the budget in the prompt only, as in the paper.

Open-weight reasoning models (R1, QwQ, Qwen3) think whatever the prompt says, so for
budget 0 the paper pre-fills the assistant turn with an empty think block. How a chat
server is told to continue a pre-filled assistant turn differs by server; that is the
``think_prefill`` option (:data:`THINK_PREFILLS`, :func:`no_think_prefill`).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from thinkstop.benchmarks.tasks.base import Item
from thinkstop.proxy.upstreams.params import VLLM_PREFILL
from thinkstop.proxy.upstreams.providers import (
    hides_reasoning,
    is_anthropic,
    provider_of,
    reasoning_effort,
)

SYSTEM: Final = (
    "You are a helpful AI assistant that analyzes problems carefully and provides accurate answers."
)
_FORMAT: Final = "clearly indicate your final answer using <answer>X</answer> format."
NATURAL: Final = "Use a thinking process to analyze the problem step-by-step."
CAUTION: Final = "You don't need to use all of your thinking budget before answering."


def keyword(budget: int) -> str:
    """The paper's emphasis keyword for a budget."""
    if budget >= 8192:
        return "Ultrathink"
    if budget >= 2048:
        return "Think harder"
    return "Think"


def budget_instruction(
    budget: int | None, *, multiple_choice: bool, cautioned: bool = False
) -> str:
    """The budget sentence(s) that follow the system prompt."""
    if budget == 0:
        act = (
            "select your answer from the provided options"
            if multiple_choice
            else "provide your answer"
        )
        return f"Don't think. Directly {act} and {_FORMAT}"
    if budget is None:
        return f"{NATURAL} At the end, {_FORMAT}"
    text = (
        f"{NATURAL} You have a thinking token budget of about {budget} tokens. "
        f"(IMPORTANT: {keyword(budget)}! YOU MUST USE ALL OF YOUR THINKING TOKENS)."
    )
    if cautioned:
        text = (
            f"{NATURAL} You have a thinking token budget of about {budget} tokens. "
            f"(IMPORTANT: {keyword(budget)}! {CAUTION})"
        )
    return f"{text} At the end, {_FORMAT}"


def system_prompt(budget: int | None, *, multiple_choice: bool, cautioned: bool = False) -> str:
    instruction = budget_instruction(budget, multiple_choice=multiple_choice, cautioned=cautioned)
    return f"{SYSTEM} {instruction}"


def messages(item: Item, budget: int | None, *, cautioned: bool = False) -> list[dict[str, Any]]:
    """Chat messages for ``item`` under a budget (None: natural thinking)."""
    return [
        {
            "role": "system",
            "content": system_prompt(
                budget, multiple_choice=item.kind == "choice", cautioned=cautioned
            ),
        },
        {"role": "user", "content": item.prompt},
    ]


# The assistant turn a budget-0 run starts from: thinking opened and closed at once (the
# form Qwen3's own template writes when thinking is switched off).
EMPTY_THINK: Final = "<think>\n\n</think>\n\n"

ThinkPrefill = Literal["auto", "none", "assistant", "vllm", "deepseek"]
THINK_PREFILLS: Final[tuple[ThinkPrefill, ...]] = ("auto", "none", "assistant", "vllm",
                                                    "deepseek")
THINK_PREFILL_HELP: Final = (
    "how budget 0 keeps an open-weight reasoning model from thinking: the assistant turn "
    "is pre-filled with an empty <think></think> block, sent as the server expects. "
    "assistant: a trailing assistant message (llama.cpp's server, Ollama); vllm: that "
    "message plus continue_final_message=true and add_generation_prompt=false (vLLM, "
    "SGLang); deepseek: that message with prefix=true (DeepSeek's prefix completion); "
    "none: the 'Don't think' prompt only. auto (default): vllm for hosted_vllm/ models and "
    "openai/ models with --api-base, deepseek for deepseek/, assistant for ollama/, none "
    "otherwise (Claude and OpenAI have native controls; the embedded local/ model renders "
    "its own prompt)"
)


def resolve_think_prefill(
    model: str, requested: str = "auto", *, api_base: str | None = None
) -> ThinkPrefill:
    """The prefill style for ``model``: ``requested``, or the best guess for ``auto``."""
    chosen = next((style for style in THINK_PREFILLS if style == requested), None)
    if chosen is None:
        raise ValueError(
            f"unknown think prefill {requested!r}; valid: {', '.join(THINK_PREFILLS)}"
        )
    if chosen != "auto":
        return chosen
    if provider(model) != "other":
        return "none"
    head = provider_of(model)
    if head == "hosted_vllm" or (head == "openai" and api_base):
        return "vllm"
    if head == "deepseek":
        return "deepseek"
    if head in ("ollama", "ollama_chat"):
        return "assistant"
    return "none"


def no_think_prefill(style: ThinkPrefill) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages to append and the request fields to set for a budget-0 run."""
    if style in ("none", "auto"):
        return [], {}
    message: dict[str, Any] = {"role": "assistant", "content": EMPTY_THINK}
    if style == "deepseek":
        message["prefix"] = True
    params = dict(VLLM_PREFILL) if style == "vllm" else {}
    return [message], params


def provider(model: str) -> str:
    """``anthropic``, ``openai-reasoning`` (o-series, gpt-5) or ``other``."""
    if is_anthropic(model):
        return "anthropic"
    return "openai-reasoning" if hides_reasoning(model) else "other"


def native_params(model: str, budget: int | None, answer_margin: int = 10_000) -> dict[str, Any]:
    """Request fields for the provider's own budget control (empty when it has none).

    Anthropic: ``thinking.budget_tokens`` = B (at least its minimum of 1024) with
    ``max_tokens`` = B + 10000 as in the paper; budget 0 and natural thinking send no
    thinking block. OpenAI reasoning models: ``reasoning_effort`` (they cannot switch
    reasoning off, so budget 0 asks for the lowest effort, and natural thinking for the
    highest).
    """
    kind = provider(model)
    if kind == "openai-reasoning":
        return {"reasoning_effort": reasoning_effort(budget)}
    if kind == "anthropic" and budget:
        return {
            "thinking": {"type": "enabled", "budget_tokens": max(budget, 1024)},
            "max_tokens": max(budget, 1024) + answer_margin,
        }
    return {}
