"""The raw-completion adapter: ``/v1/completions`` servers (vLLM, SGLang, llama.cpp).

The proxy renders the chat template itself and opens the think block in the prompt, so it
sees every reasoning token as plain text, and it can run the exact continuation: prompt +
truncated reasoning + end-of-thinking marker, after which the model writes its answer.
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
from thinkstop.proxy.upstreams.chunk_events import chunk_events
from thinkstop.proxy.upstreams.http_sse import make_client, post_json, stream_sse
from thinkstop.proxy.upstreams.parsing import completion_logprobs, parse_usage
from thinkstop.proxy.upstreams.templates import Template, resolve_template
from thinkstop.proxy.upstreams.thinking import Piece, ThinkSplitter
from thinkstop.proxy.upstreams.tokens import TokenCounter, default_counter

TOP_LOGPROBS = 5
# Chat-only request fields that a completions endpoint would reject.
_CHAT_ONLY = frozenset({"messages", "tools", "tool_choice", "response_format",
                        "parallel_tool_calls", "reasoning_effort", "max_completion_tokens",
                        "logprobs", "top_logprobs", "stream_options"})


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
    ) -> None:
        self.name = name
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

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def prompt(self, request: ChatRequest) -> str:
        """The rendered conversation, with the think block opened."""
        return self.template(request.messages) + self.think_prefix

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params = {k: v for k, v in request.params.items() if k not in _CHAT_ONLY}
        limit = request.params.get("max_completion_tokens")
        if limit is not None and "max_tokens" not in params:
            params["max_tokens"] = limit
        return params

    def stream(self, request: ChatRequest) -> EventStream:
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
        chunks = stream_sse(self._client.pick(), self.url, body, self.headers)

        def pieces(choice: dict[str, Any]) -> list[Piece]:
            text = choice.get("text")
            return splitter.feed(text) if isinstance(text, str) and text else []

        return chunk_events(chunks, splitter, pieces)

    async def aclose(self) -> None:
        await self._client.aclose()
