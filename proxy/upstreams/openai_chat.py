"""The native adapter for OpenAI-compatible chat servers (vLLM, SGLang, llama.cpp, ...).

Talks the wire format directly over a pooled httpx client. litellm reaches the same
servers, but measured on these machines it adds about 17 ms to time to first token and
0.5 ms per streamed chunk; this path adds a fraction of a millisecond. The registry uses
it for ``openai/`` and ``hosted_vllm/`` models that name an ``api_base``, unless the config
says ``adapter: litellm``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx

from thinkstop.proxy.upstreams import params as p
from thinkstop.proxy.upstreams.base import Capabilities, UpstreamConfigError
from thinkstop.proxy.upstreams.chat_base import ChatUpstreamBase
from thinkstop.proxy.upstreams.deadlines import Deadlines
from thinkstop.proxy.upstreams.http_sse import (
    MAX_LINE_BYTES,
    make_client,
    post_json,
    stream_sse,
)
from thinkstop.proxy.upstreams.providers import capabilities_for, provider_of
from thinkstop.proxy.upstreams.tokens import TokenCounter


class OpenAIChatUpstream(ChatUpstreamBase):
    """``POST {api_base}/chat/completions``, streamed for the main call and continuation."""

    def __init__(
        self,
        name: str,
        model: str,
        *,
        api_base: str,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        capabilities: Capabilities,
        defaults: dict[str, Any] | None = None,
        prefill_body: dict[str, Any] | None = None,
        counter: TokenCounter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        deadlines: Deadlines | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        super().__init__(name, model, capabilities=capabilities, defaults=defaults,
                         prefill_body=prefill_body, counter=counter, deadlines=deadlines)
        self.max_line_bytes = max_line_bytes
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._client = make_client(timeout, transport)

    @classmethod
    def from_params(cls, model_name: str, params: dict[str, Any]) -> OpenAIChatUpstream:
        base = p.api_base(params)
        if base is None:
            raise UpstreamConfigError(
                f"{model_name}: litellm_params.api_base is required for the openai adapter")
        model = str(params["model"])
        return cls(
            model_name, p.bare_model(model), api_base=base, api_key=p.api_key(params),
            headers=p.headers(params), timeout=p.timeout(params),
            capabilities=capabilities_for(model), defaults=p.sampling_defaults(params),
            prefill_body=p.VLLM_PREFILL if provider_of(model) == "hosted_vllm" else None,
            deadlines=Deadlines.from_params(model_name, params),
            max_line_bytes=p.max_line_bytes(model_name, params),
        )

    def _chunks(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        # The SSE generator closes its own connection; the caller closes the generator.
        return stream_sse(self._client.pick(), self.url, {"model": self.model, **body},
                          self.headers, max_line_bytes=self.max_line_bytes)

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return await post_json(self._client.pick(), self.url, {"model": self.model, **body},
                               self.headers)

    async def aclose(self) -> None:
        await self._client.aclose()
