"""What the two chat adapters (native OpenAI-compatible, litellm) share.

A subclass supplies the transport, :meth:`ChatUpstreamBase._chunks` (stream of chunk dicts)
and :meth:`ChatUpstreamBase._complete` (one reply dict); this class builds request bodies
for the main stream, probes and continuations, and normalises replies into the contract's
events. Chat upstreams support the ``prefix``, ``prefill`` and ``reask`` continuations.

Tools: the main stream and the continuation carry the request's ``tools`` (the model's
next step may be a tool call, relayed as ``tool_call`` events); a probe keeps them
declared but sets ``tool_choice: "none"``, so it answers in text while its prompt starts
as the main call's does (tools are rendered at the top of most chat templates, and a
server's prefix cache then serves the probe's prompt). :meth:`ChatUpstreamBase.relay`
passes a request through untouched, for what the halting loop cannot follow.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Final

from thinkstop.proxy.upstreams import prompts
from thinkstop.proxy.upstreams.base import (
    Capabilities,
    ChatRequest,
    Continuation,
    EventStream,
    ProbeResult,
    StreamEvent,
    UpstreamBase,
    UpstreamError,
    Usage,
)
from thinkstop.proxy.upstreams.chunk_events import ChoiceReaders, chunk_events
from thinkstop.proxy.upstreams.deadlines import Deadlines, within
from thinkstop.proxy.upstreams.parsing import chat_logprobs, chat_token_entries, parse_usage
from thinkstop.proxy.upstreams.strategies import Strategy, get_strategy
from thinkstop.proxy.upstreams.thinking import ThinkSplitter, split_delta
from thinkstop.proxy.upstreams.tokens import TokenCounter, default_counter

# Request fields that would turn thinking back on in a continuation (Anthropic refuses
# assistant prefill with extended thinking enabled).
_NO_CONTINUE: Final = frozenset({"thinking"})
TOP_LOGPROBS: Final = 5


def has_tools(params: dict[str, Any]) -> bool:
    """Whether a request offers the model tools."""
    return bool(params.get("tools"))


class ChatUpstreamBase(UpstreamBase):
    """An upstream reached through a chat-completions API."""

    def __init__(
        self,
        name: str,
        model: str,
        *,
        capabilities: Capabilities,
        defaults: dict[str, Any] | None = None,
        prefill_body: dict[str, Any] | None = None,
        counter: TokenCounter | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.capabilities = capabilities
        self.defaults = dict(defaults or {})
        self.prefill_body = dict(prefill_body or {})
        self._count = counter or default_counter()
        self.deadlines = deadlines or Deadlines()
        chat = [s for s in map(get_strategy, capabilities.continuations) if s.probe_messages]
        self.probe_style: Strategy = chat[0] if chat else get_strategy("reask")

    # -- transport (subclasses) ------------------------------------------------------
    def _chunks(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    # -- the Upstream protocol -------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def stream(self, request: ChatRequest) -> EventStream:
        body = self._body(request.params, request.messages)
        return self._events(body)

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        style = self.probe_style
        assert style.probe_messages is not None
        body: dict[str, Any] = {
            **self.defaults,
            "messages": style.probe_messages(request.messages, reasoning),
            "max_tokens": max_tokens,
            "stop": list(prompts.PROBE_STOP),
            "temperature": 0,
            "stream": False,
        }
        if has_tools(request.params):
            body["tools"] = request.params["tools"]
            body["tool_choice"] = "none"
        if style.prefill:
            body.update(self.prefill_body)
        if self.capabilities.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = TOP_LOGPROBS
        reply = await self._complete(body)
        choices = reply.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise UpstreamError("probe reply has no choices")
        message = choices[0].get("message") or {}
        output = message.get("content") if isinstance(message, dict) else None
        text = prompts.probe_answer_text(str(output or ""), prefilled=style.probe_prefilled)
        logprob, alternatives = chat_logprobs(choices[0].get("logprobs"))
        usage = parse_usage(reply.get("usage")) or Usage(
            prompt_tokens=0, completion_tokens=self.count_tokens(str(output or ""))
        )
        return ProbeResult(text=text, logprob=logprob, alternatives=alternatives, usage=usage)

    def continue_answer(
        self, request: ChatRequest, reasoning: str, strategy: Continuation
    ) -> EventStream:
        chosen = get_strategy(strategy)
        if chosen.continue_messages is None:
            return _refused(f"a chat upstream cannot run the {strategy!r} continuation")
        params = {k: v for k, v in request.params.items() if k not in _NO_CONTINUE}
        tools = has_tools(params)
        if tools and not chosen.tools:
            # The model could not call a tool from here: fail (the chain falls back to the
            # next strategy) rather than drop the tools.
            return _refused(f"the {strategy!r} continuation cannot carry tools")
        messages = chosen.messages_for(request.messages, reasoning, tools=tools)
        body = self._body(params, messages)
        if chosen.prefill:
            body.update(self.prefill_body)
        return self._events(body)

    def relay(self, request: ChatRequest) -> AsyncGenerator[dict[str, Any], None]:
        """The upstream's own stream of chunks for ``request``, untouched but for asking
        for the usage chunk (the pass-through path; the caller closes it)."""
        return within(self._chunks(self._body(request.params, request.messages)),
                      self.deadlines)

    async def relay_whole(self, request: ChatRequest) -> dict[str, Any]:
        """The upstream's own reply to ``request``, not streamed (pass-through)."""
        return await self._complete({**self.defaults, **request.params,
                                     "messages": request.messages, "stream": False})

    # -- helpers ---------------------------------------------------------------------
    def _body(self, params: dict[str, Any], messages: prompts.Messages) -> dict[str, Any]:
        return {
            **self.defaults,
            **params,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def _events(self, body: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        splitter = ThinkSplitter()
        readers = ChoiceReaders(
            pieces=lambda c: split_delta(c.get("delta") or {}, splitter),
            logprobs=lambda c: chat_token_entries(c.get("logprobs")),
        )
        return chunk_events(within(self._chunks(body), self.deadlines), splitter, readers)


async def _refused(message: str) -> AsyncGenerator[StreamEvent, None]:
    """A stream that fails when read, like an upstream refusing the call."""
    raise UpstreamError(message)
    yield StreamEvent(kind="finish")  # unreachable: makes this an async generator
