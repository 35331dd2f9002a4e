"""What each provider can do, as one table (the README's provider table mirrors it).

Each provider lists its continuations (:mod:`.strategies`) best first; ``continuation:
auto`` takes the first. Also here: which models hide their reasoning, and the reasoning
budget each ``reasoning_effort`` stands for.
"""

from __future__ import annotations

import re
from typing import Final

from thinkstop.proxy.upstreams.base import Capabilities, Continuation
from thinkstop.proxy.upstreams.strategies import get_strategy

_CHAT_DEFAULT: Final = Capabilities(continuations=("reask",), logprobs=False)

PROVIDERS: Final[dict[str, Capabilities]] = {
    # Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, LM Studio...): re-ask is the
    # one strategy every server honours; set `continuation: prefill` for servers that
    # continue a trailing assistant message (llama.cpp's server does).
    "openai": Capabilities(continuations=("reask", "prefill"), logprobs=True),
    "hosted_vllm": Capabilities(continuations=("prefill", "reask"), logprobs=True),
    "deepseek": Capabilities(continuations=("prefix", "reask"), logprobs=False),
    "anthropic": Capabilities(continuations=("prefill", "reask"), logprobs=False),
    "ollama_chat": Capabilities(continuations=("prefill", "reask"), logprobs=False),
    "ollama": Capabilities(continuations=("prefill", "reask"), logprobs=False),
    "text-completion-openai": Capabilities(continuations=("raw",), logprobs=True),
}

# OpenAI reasoning models keep their reasoning to themselves: no probes are possible.
# The one place that says which models those are (the proxy and the benchmark ask here).
_HIDDEN: Final = re.compile(r"^(?:openai/|azure/)?(?:o\d(?:-|$)|gpt-5)", re.IGNORECASE)
_ANTHROPIC: Final = re.compile(r"^(?:anthropic/|bedrock/anthropic|vertex_ai/claude|claude)",
                               re.IGNORECASE)


def provider_of(model: str) -> str:
    """``deepseek/deepseek-reasoner`` -> ``deepseek``; a bare model name -> ``openai``."""
    head, sep, _ = model.partition("/")
    return head if sep else "openai"


def hides_reasoning(model: str) -> bool:
    """True for models known to hide their reasoning (OpenAI o-series, gpt-5)."""
    return _HIDDEN.match(model) is not None


def is_anthropic(model: str) -> bool:
    """Claude, through Anthropic's API or a cloud that serves it."""
    return _ANTHROPIC.match(model) is not None


def reasoning_effort(budget: int | None) -> str:
    """OpenAI ``reasoning_effort`` for a reasoning-token budget; None (natural thinking,
    no budget) asks for the most.

    The paper maps 1024/4096/8192 to low/medium/high; the cut points sit between those
    (geometric midpoints: about 2048 and 6144), so 0 and 1024 are low, 2048 and 4096
    medium, 8192 and up high.
    """
    if budget is None or budget >= 6144:
        return "high"
    return "medium" if budget >= 2048 else "low"


def capabilities_for(model: str) -> Capabilities:
    """Capabilities of a litellm model id, from the table above."""
    if hides_reasoning(model):
        return Capabilities(continuations=(), logprobs=False, hides_reasoning=True)
    return PROVIDERS.get(provider_of(model), _CHAT_DEFAULT)


def choose_continuation(
    capabilities: Capabilities, requested: Continuation | str = "auto"
) -> Continuation | None:
    """The strategy to run after a halt: the requested one, or the best the upstream has.

    An explicit request wins (the operator knows their server); ``auto`` takes the first
    strategy the upstream lists; None when it lists none (hidden reasoning).
    """
    if requested != "auto":
        return get_strategy(requested).name
    return capabilities.continuations[0] if capabilities.continuations else None
