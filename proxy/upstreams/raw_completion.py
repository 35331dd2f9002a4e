"""The raw-completion adapter: ``/v1/completions`` servers (vLLM, SGLang, llama.cpp).

The proxy renders the chat template itself and opens the think block in the prompt, so it
sees every reasoning token as plain text, and it can run the exact continuation: prompt +
truncated reasoning + end-of-thinking marker, after which the model writes its answer.

A request may also carry a prompt the client rendered itself (``/v1/completions``: no
messages, ``params["prompt"]``); it is sent as it is, and the text is reasoning when that
prompt leaves a think block open (:func:`opens_reasoning`). :meth:`relay_completion`
passes a completions request through untouched. A client's ``logprobs`` (chat style) are
asked for in the completions style and relayed for the answer's tokens.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx

from thinkstop.proxy.upstreams import params as p
from thinkstop.proxy.upstreams import prompts
from thinkstop.proxy.upstreams.base import (
    Capabilities,
    ChatRequest,
    Continuation,
    EventStream,
    ProbeResult,
    StreamEvent,
    UpstreamBase,
    UpstreamConfigError,
    UpstreamError,
    Usage,
)
from thinkstop.proxy.upstreams.chunk_events import ChoiceReaders, chunk_events
from thinkstop.proxy.upstreams.deadlines import Deadlines, within
from thinkstop.proxy.upstreams.http_sse import (
    MAX_LINE_BYTES,
    make_client,
    post_json,
    stream_sse,
)
from thinkstop.proxy.upstreams.parsing import (
    completion_logprobs,
    completion_token_entries,
    parse_usage,
)
from thinkstop.proxy.upstreams.templates import Template, resolve_template
from thinkstop.proxy.upstreams.thinking import THINK_CLOSE, THINK_OPEN, Piece, ThinkSplitter
from thinkstop.proxy.upstreams.tokens import TokenCounter, default_counter

TOP_LOGPROBS = 5
# Chat-only request fields that a completions endpoint would reject.
_CHAT_ONLY = frozenset({"messages", "tools", "tool_choice", "response_format",
                        "parallel_tool_calls", "reasoning_effort", "max_completion_tokens",
                        "logprobs", "top_logprobs", "stream_options", "prompt"})
# The key of a prompt the client rendered itself (``/v1/completions``).
PROMPT_KEY = "prompt"


def opens_reasoning(prompt: str) -> bool:
    """Whether ``prompt`` ends inside an open think block, so the text that follows it is
    reasoning (a ``<think>`` after the last ``</think>``)."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


class RawCompletionUpstream(UpstreamBase):
    """``POST {api_base}/completions`` with a rendered chat template."""

    @classmethod
    def from_params(cls, model_name: str, params: dict[str, Any]) -> RawCompletionUpstream:
        base = p.api_base(params)
        if base is None:
            raise UpstreamConfigError(
                f"{model_name}: litellm_params.api_base is required for the raw adapter")
        try:
            return cls(
                model_name, p.bare_model(str(params["model"])), api_base=base,
                api_key=p.api_key(params), chat_template=params.get("chat_template"),
                think_prefix=str(params.get("think_prefix", "<think>\n")),
                headers=p.headers(params), timeout=p.timeout(params),
                defaults=p.sampling_defaults(params),
                deadlines=Deadlines.from_params(model_name, params),
                max_line_bytes=p.max_line_bytes(model_name, params),
            )
        except ValueError as exc:
            raise UpstreamConfigError(f"{model_name}: litellm_params.{exc}") from exc

    def __init__(
        self,
        name: str,
        model: str,
        *,
        api_base: str,
        api_key: str | None = None,
        chat_template: str | None = None,
        think_prefix: str = "<think>\n",
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        defaults: dict[str, Any] | None = None,
        logprobs: bool = True,
        counter: TokenCounter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        deadlines: Deadlines | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.name = name
        self.max_line_bytes = max_line_bytes
        self.model = model
        self.capabilities = Capabilities(continuations=("raw",), logprobs=logprobs)
        self.url = api_base.rstrip("/") + "/completions"
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.template: Template = resolve_template(chat_template)
        self.think_prefix = think_prefix
        self.defaults = dict(defaults or {})
        self._count = counter or default_counter()
        self._client = make_client(timeout, transport)
        self.deadlines = deadlines or Deadlines()

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        return self.count_tokens(self.prompt(request))

    def prompt(self, request: ChatRequest) -> str:
        """The rendered conversation, with the think block opened; or the client's own
        prompt, as it is."""
        given = request.params.get(PROMPT_KEY)
        if not request.messages and isinstance(given, str):
            return given
        return self.template(request.messages) + self.think_prefix

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params = {k: v for k, v in request.params.items() if k not in _CHAT_ONLY}
        limit = request.params.get("max_completion_tokens")
        if limit is not None:
            given = params.get("max_tokens")
            params["max_tokens"] = min(limit, given) if isinstance(given, int) else limit
        if request.params.get("logprobs") is True:
            # Chat style (a flag and a count) to completions style (the count).
            params["logprobs"] = int(request.params.get("top_logprobs") or 0)
        return params

    def stream(self, request: ChatRequest) -> EventStream:
        # The prompt opened the think block (the template's think prefix, or a client's
        # prompt that the proxy only halts when it does: see opens_reasoning).
        body = {**self.defaults, **self._params(request), "prompt": self.prompt(request)}
        return self._events(body, ThinkSplitter("reasoning"))

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        body: dict[str, Any] = {
            **self.defaults,
            "model": self.model,
            "prompt": prompts.raw_probe(self.prompt(request), reasoning),
            "max_tokens": max_tokens,
            "stop": list(prompts.PROBE_STOP),
            "temperature": 0,
            "stream": False,
        }
        if self.capabilities.logprobs:
            body["logprobs"] = TOP_LOGPROBS
        reply = await post_json(self._client.pick(), self.url, body, self.headers)
        choices = reply.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise UpstreamError("probe reply has no choices")
        output = str(choices[0].get("text") or "")
        logprob, alternatives = completion_logprobs(choices[0].get("logprobs"))
        usage = parse_usage(reply.get("usage")) or Usage(
            completion_tokens=self.count_tokens(output)
        )
        return ProbeResult(
            text=prompts.probe_answer_text(output, prefilled=True),
            logprob=logprob,
            alternatives=alternatives,
            usage=usage,
        )

    def continue_answer(
        self, request: ChatRequest, reasoning: str, strategy: Continuation
    ) -> EventStream:
        if strategy != "raw":
            raise UpstreamError(f"the raw-completion upstream cannot run {strategy!r}")
        prompt = prompts.raw_continuation(self.prompt(request), reasoning)
        body = {**self.defaults, **self._params(request), "prompt": prompt}
        return self._events(body, ThinkSplitter("content"))

    def _events(
        self, body: dict[str, Any], splitter: ThinkSplitter
    ) -> AsyncGenerator[StreamEvent, None]:
        body = {**body, "model": self.model, "stream": True,
                "stream_options": {"include_usage": True}}
        chunks = within(stream_sse(self._client.pick(), self.url, body, self.headers,
                                   max_line_bytes=self.max_line_bytes), self.deadlines)

        def pieces(choice: dict[str, Any]) -> list[Piece]:
            text = choice.get("text")
            return splitter.feed(text) if isinstance(text, str) and text else []

        readers = ChoiceReaders(pieces, lambda c: completion_token_entries(c.get("logprobs")))
        return chunk_events(chunks, splitter, readers)

    def relay_completion(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """A client's completions request, streamed through untouched (its ``model``
        replaced by the upstream's); the caller closes the stream."""
        return within(stream_sse(self._client.pick(), self.url,
                                 {**body, "model": self.model}, self.headers,
                                 max_line_bytes=self.max_line_bytes), self.deadlines)

    async def relay_completion_whole(self, body: dict[str, Any]) -> dict[str, Any]:
        """A client's completions request, not streamed, through untouched."""
        return await post_json(self._client.pick(), self.url, {**body, "model": self.model},
                               self.headers)

    async def aclose(self) -> None:
        await self._client.aclose()
