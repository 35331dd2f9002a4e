"""The litellm adapter: any chat provider litellm knows (``deepseek/``, ``anthropic/``,
``ollama_chat/``, ``gemini/``, ...), behind the same interface as the native one.

litellm is imported when the first request runs, never at import time, with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first so it does not try the network.
Provider exceptions (litellm's subclasses of openai's) become :class:`UpstreamError`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from types import ModuleType
from typing import Any

from thinkstop.proxy.upstreams.base import Capabilities, FailureKind, UpstreamError
from thinkstop.proxy.upstreams.chat_base import ChatUpstreamBase
from thinkstop.proxy.upstreams.deadlines import Deadlines
from thinkstop.proxy.upstreams.http_sse import MAX_LINE_BYTES, oversized, text_chars
from thinkstop.proxy.upstreams.params import OWN_KEYS, VLLM_PREFILL
from thinkstop.proxy.upstreams.params import max_line_bytes as line_limit
from thinkstop.proxy.upstreams.providers import capabilities_for, provider_of
from thinkstop.proxy.upstreams.tokens import TokenCounter


def load_litellm() -> ModuleType:
    """Import litellm with its cost map read locally (no network at import)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


def _failure(exc: BaseException) -> UpstreamError:
    import openai

    status = getattr(exc, "status_code", None)
    kind: FailureKind | None = None
    if isinstance(exc, openai.APITimeoutError):
        kind = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        kind = "connect"
    return UpstreamError(
        f"upstream call failed: {type(exc).__name__}: {exc}",
        status_code=status if isinstance(status, int) else None, kind=kind,
    )


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    dumped = obj.model_dump()
    return dumped if isinstance(dumped, dict) else {}


class LiteLLMChatUpstream(ChatUpstreamBase):
    """``litellm.acompletion`` with the model's ``litellm_params`` (credentials included)."""

    def __init__(
        self,
        name: str,
        model: str,
        *,
        params: dict[str, Any],
        capabilities: Capabilities,
        defaults: dict[str, Any] | None = None,
        prefill_body: dict[str, Any] | None = None,
        counter: TokenCounter | None = None,
        deadlines: Deadlines | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        super().__init__(name, model, capabilities=capabilities, defaults=defaults,
                         prefill_body=prefill_body, counter=counter, deadlines=deadlines)
        self.params = dict(params)  # api_key, api_base, ... passed to litellm as given
        self.max_line_bytes = max_line_bytes

    @classmethod
    def from_params(cls, model_name: str, params: dict[str, Any]) -> LiteLLMChatUpstream:
        model = str(params["model"])
        passed = {k: v for k, v in params.items() if k not in OWN_KEYS and k != "model"}
        return cls(
            model_name, model, params=passed, capabilities=capabilities_for(model),
            prefill_body=VLLM_PREFILL if provider_of(model) == "hosted_vllm" else None,
            deadlines=Deadlines.from_params(model_name, params),
            max_line_bytes=line_limit(model_name, params),
        )

    def _kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        # The proxy retries the main stream itself, before the first byte only; litellm's
        # and the OpenAI SDK's own retries would stack on it unless the config asks.
        kwargs = {"num_retries": 0, "max_retries": 0, **self.params, **body,
                  "model": self.model}
        extra = {k: kwargs.pop(k) for k in ("continue_final_message", "add_generation_prompt")
                 if k in kwargs}
        if extra:
            kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
        return kwargs

    def _chunks(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        # Imported now, not when the stream is first read: a first import takes seconds,
        # which must not count against the stream's first-chunk deadline.
        return self._stream(load_litellm(), body)

    async def _stream(self, litellm: ModuleType, body: dict[str, Any]
                      ) -> AsyncGenerator[dict[str, Any], None]:
        from openai import OpenAIError  # litellm's exceptions all derive from it

        try:
            response = await litellm.acompletion(**self._kwargs(body))
        except OpenAIError as exc:
            raise _failure(exc) from exc
        try:
            async for chunk in response:
                payload = _as_dict(chunk)
                # The provider SDK reads the line whole; past the limit the stream still
                # fails as it does on the native path, before its text goes anywhere.
                if text_chars(payload) > self.max_line_bytes:
                    raise oversized(self.max_line_bytes)
                yield payload
        except OpenAIError as exc:
            raise _failure(exc) from exc
        finally:
            # Breaking out of `async for` does not close a litellm stream; this does.
            await response.aclose()

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        litellm = load_litellm()
        from openai import OpenAIError

        try:
            reply = await litellm.acompletion(**self._kwargs(body))
        except OpenAIError as exc:
            raise _failure(exc) from exc
        return _as_dict(reply)
