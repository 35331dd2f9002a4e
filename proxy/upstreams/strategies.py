"""Continuation strategies by name: how a model writes its own answer after a halt, and
how a probe asks it for its answer now.

A registry like the policies' (:func:`register_strategy`), in order of preference, best
first: ``raw`` (exact: the model's own template and end-of-thinking marker), ``prefix``
(DeepSeek's prefix completion with the reasoning as ``reasoning_content``), ``prefill``
(an assistant turn the server continues), ``reask`` (the reasoning quoted back in a user
turn; any chat API). Each upstream lists the strategies it can run
(:attr:`Capabilities.continuations`); ``continuation: auto`` takes the best it lists.

A request that offers tools needs a continuation that carries them, so that the model's
next step after a halt may be a tool call (``Strategy.tools``): only ``reask`` does. It
is a plain chat turn with the request's tools attached. ``raw`` would need the tools
rendered into the prompt and calls parsed back out of text; ``prefill`` and ``prefix``
continue an assistant message as text, which servers do not parse tool calls out of
(vLLM's ``continue_final_message``, llama.cpp's prefill, DeepSeek's prefix beta).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import get_args

from thinkstop.proxy.upstreams import prompts
from thinkstop.proxy.upstreams.base import Continuation

MessageBuilder = Callable[[prompts.Messages, str], prompts.Messages]


@dataclass(frozen=True, slots=True)
class Strategy:
    """One continuation strategy.

    ``continue_messages`` and ``probe_messages`` build chat messages from the request's
    messages and the reasoning so far; None for ``raw``, where the adapter continues the
    model's own text. ``probe_prefilled``: the probe prompt already opened ``<answer>``,
    so the reply is the bare answer. ``prefill``: the server must be told to continue the
    last assistant turn (vLLM's ``continue_final_message``). ``tools``: the strategy
    carries the request's tools, so the model may answer with a tool call;
    ``tools_continue_messages`` is its wording for such requests (default: the usual one).
    """

    name: Continuation
    summary: str
    continue_messages: MessageBuilder | None = None
    probe_messages: MessageBuilder | None = None
    probe_prefilled: bool = True
    prefill: bool = False
    tools: bool = False
    tools_continue_messages: MessageBuilder | None = None

    def messages_for(self, messages: prompts.Messages, reasoning: str, *,
                     tools: bool) -> prompts.Messages:
        """The continuation's messages; ``tools``: the request offers tools."""
        build = (self.tools_continue_messages if tools else None) or self.continue_messages
        if build is None:
            raise ValueError(f"the {self.name!r} continuation builds no chat messages")
        return build(messages, reasoning)


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add ``strategy`` (later registrations rank lower in ``auto``)."""
    if strategy.name not in get_args(Continuation):
        raise ValueError(f"{strategy.name!r} is not a Continuation name")
    STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown continuation {name!r}; valid: auto, {', '.join(STRATEGIES)}") from None


def carrying_tools(names: Iterable[str]) -> tuple[Continuation, ...]:
    """Those of ``names`` (in order) whose strategy carries a request's tools."""
    return tuple(get_strategy(name).name for name in names if get_strategy(name).tools)


register_strategy(Strategy(
    "raw", "prompt + reasoning + </think>, then the model's own answer (raw completion)"))
register_strategy(Strategy(
    "prefix", "DeepSeek prefix completion: the reasoning as reasoning_content",
    prompts.prefix_continuation, prompts.prefix_probe))
register_strategy(Strategy(
    "prefill", "an assistant turn holding the reasoning, continued by the server",
    prompts.prefill_continuation, prompts.prefill_probe, prefill=True))
register_strategy(Strategy(
    "reask", "the reasoning quoted back in a user turn (any chat API)",
    prompts.reask_continuation, prompts.reask_probe, probe_prefilled=False, tools=True,
    tools_continue_messages=prompts.reask_tools_continuation))
