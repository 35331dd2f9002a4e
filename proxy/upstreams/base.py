"""The upstream interface: what every model adapter (litellm chat, raw completion, the
embedded llama.cpp model) offers the proxy and the benchmark recorder.

Every upstream chunk shape is normalised, inside the adapter, into :class:`StreamEvent`,
so the rest of the code sees one event type (reasoning text, answer text, usage, finish).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

EventKind = Literal["reasoning", "content", "tool_call", "usage", "finish"]

# How the final answer is written after a halt; see the README's provider table.
Continuation = Literal["raw", "prefix", "prefill", "reask"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one upstream call (or a sum of several)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, served from a prefix cache

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
        )


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of one tool call the model is making, as the OpenAI chat stream sends it.

    ``index`` tells calls apart; ``id`` and ``name`` come with a call's first piece (None
    after), ``arguments`` is the next piece of its JSON arguments text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One normalised piece of an upstream stream.

    ``tokens`` is the exact number of tokens in ``text`` when the adapter knows it (the
    local model does); None means the caller counts with :meth:`Upstream.count_tokens`.
    A ``tool_call`` event carries ``tool_call`` (its text is empty). ``logprobs``: the
    OpenAI chat per-token entries of a ``content`` event's tokens, when the request asked
    for them and the upstream sent them.
    """

    kind: EventKind
    text: str = ""
    tokens: int | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_call: ToolCallDelta | None = None
    logprobs: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request as an adapter receives it.

    ``model`` is the upstream model id (e.g. ``openai/qwen``); ``params`` carries the
    OpenAI sampling fields the client sent (temperature, top_p, seed, stop, ...) to pass
    on unchanged.
    """

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A short forced answer from the reasoning so far.

    ``logprob`` is the total log probability of the answer's tokens (all of them, not just
    the first); ``alternatives`` maps other candidate answers to log probabilities when the
    upstream gives top alternatives.
    """

    text: str
    logprob: float | None = None
    alternatives: dict[str, float] | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an upstream can do; the proxy chooses strategies from this."""

    continuations: tuple[Continuation, ...] = ("reask",)
    logprobs: bool = False
    hides_reasoning: bool = False


EventStream = AsyncGenerator[StreamEvent, None]


@runtime_checkable
class Upstream(Protocol):
    """One model behind the proxy.

    Streams are async generators: callers must ``await stream.aclose()`` on halt, error and
    client disconnect, and adapters close their own upstream connection in ``finally``.
    """

    name: str
    capabilities: Capabilities

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's tokenizer, or a documented approximation."""
        ...

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """The main call's prompt size as the model sees it (template and system turns
        included where the adapter can render them), for a cut stream that never
        reports its own usage."""
        ...

    def stream(self, request: ChatRequest) -> EventStream:
        """Stream the model's reasoning, then its answer, then one usage event."""
        ...

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        """Ask for the answer now, from ``reasoning`` so far, in at most ``max_tokens``."""
        ...

    def continue_answer(
        self, request: ChatRequest, reasoning: str, strategy: Continuation
    ) -> EventStream:
        """Stream the model's real final answer written after the truncated reasoning."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads or model memory."""
        ...


class UpstreamBase:
    """What most adapters share: the default hooks of :class:`Upstream`, and the
    constructor the registry calls (:meth:`from_params`).

    Subclasses set ``name`` and ``capabilities`` and implement ``stream``, ``probe`` and
    ``continue_answer``; they override a hook where they know better (the embedded model
    counts with its own tokenizer and renders its own prompt).
    """

    name: str
    capabilities: Capabilities = Capabilities()

    @classmethod
    def from_params(cls, model_name: str, params: dict[str, Any]) -> UpstreamBase:
        """Build from a config entry's ``litellm_params`` (raise
        :class:`UpstreamConfigError` naming the problem)."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """The documented approximation (:mod:`.tokens`); adapters with a tokenizer
        override it."""
        from thinkstop.proxy.upstreams.tokens import default_counter

        return default_counter()(text)

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """The messages' text, counted; adapters that render their prompt override it."""
        from thinkstop.proxy.upstreams.thinking import message_text

        return self.count_tokens("\n".join(message_text(m.get("content"))
                                            for m in request.messages))

    async def aclose(self) -> None:
        return None


class UpstreamConfigError(ValueError):
    """A model entry cannot be turned into an upstream; the message names the problem."""


@runtime_checkable
class SoftHalting(Protocol):
    """An upstream that can halt softly: instead of closing the reasoning at once, it adds
    a wrap-up cue to it and lets the model reason up to ``grace_tokens`` more, then
    writes the answer (a hard cut mid-thought can hurt the answer)."""

    def continue_soft(self, request: ChatRequest, reasoning: str,
                      grace_tokens: int) -> EventStream:
        ...


FailureKind = Literal["status", "connect", "timeout", "protocol", "oversized"]


class UpstreamError(Exception):
    """An upstream call failed (connection, HTTP status, malformed reply).

    Adapters raise this, and only this, for upstream failures so that the proxy never has
    to match provider exception types or message text. ``status_code`` is the upstream's
    HTTP status when there was one; ``kind`` says what went wrong: ``status`` (an HTTP
    error reply), ``connect`` (no connection: refused, DNS, reset before a reply),
    ``timeout`` (no reply or no next chunk in time), ``protocol`` (a reply that is not
    what the wire format promises: malformed SSE or JSON, an in-band error, a cut stream),
    ``oversized`` (one SSE line or chunk past the adapter's size limit).
    ``retry_after`` is the upstream's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, message: str, status_code: int | None = None, *,
                 kind: FailureKind | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.kind: FailureKind = kind or ("status" if status_code is not None else "protocol")
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Safe and useful to try again (nothing reached the client yet is the caller's
        part): no connection, or an overloaded or restarting upstream (502/503/504)."""
        return self.kind == "connect" or self.status_code in (502, 503, 504)
