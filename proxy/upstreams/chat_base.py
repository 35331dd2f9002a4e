"""What the two chat adapters (native OpenAI-compatible, litellm) share.

A subclass supplies the transport, :meth:`ChatUpstreamBase._chunks` (stream of chunk dicts)
and :meth:`ChatUpstreamBase._complete` (one reply dict); this class builds request bodies
for the main stream, probes and continuations, and normalises replies into the contract's
events. Chat upstreams support the ``prefix``, ``prefill`` and ``reask`` continuations.
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
from thinkstop.proxy.upstreams.chunk_events import chunk_events
from thinkstop.proxy.upstreams.parsing import chat_logprobs, parse_usage
from thinkstop.proxy.upstreams.strategies import Strategy, get_strategy
from thinkstop.proxy.upstreams.thinking import ThinkSplitter, split_delta
from thinkstop.proxy.upstreams.tokens import TokenCounter, default_counter

# Request fields that would turn thinking back on in a continuation (Anthropic refuses
# assistant prefill with extended thinking enabled).
_NO_CONTINUE: Final = frozenset({"thinking"})
TOP_LOGPROBS: Final = 5


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
    ) -> None:
        self.name = name
        self.model = model
        self.capabilities = capabilities
        self.defaults = dict(defaults or {})
        self.prefill_body = dict(prefill_body or {})
        self._count = counter or default_counter()
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
            raise UpstreamError(f"a chat upstream cannot run the {strategy!r} continuation")
        params = {k: v for k, v in request.params.items() if k not in _NO_CONTINUE}
        body = self._body(params, chosen.continue_messages(request.messages, reasoning))
        if chosen.prefill:
            body.update(self.prefill_body)
        return self._events(body)

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
        return chunk_events(
            self._chunks(body), splitter, lambda c: split_delta(c.get("delta") or {}, splitter)
        )
