"""The paper's prompts (Gema et al., arXiv 2507.14417) and each provider's native budget.

A run sends one system prompt per regime: ``budget=None`` is natural thinking (no budget),
``0`` asks for no thinking at all, ``B > 0`` states a thinking budget of about B tokens
with the paper's keyword ("Think" / "Think harder" / "Ultrathink"). Where the provider has
a native control it is set too (Anthropic ``thinking.budget_tokens``, OpenAI
``reasoning_effort``); other models get the budget in the prompt only, as in the paper.
"""

from __future__ import annotations

from typing import Any, Final

from thinkstop.benchmarks.tasks.base import Item
from thinkstop.proxy.upstreams.providers import hides_reasoning, is_anthropic, reasoning_effort

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
