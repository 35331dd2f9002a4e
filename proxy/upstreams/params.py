"""Reading a model entry's ``litellm_params``: one place for the keys every adapter
shares, so that none of them reaches a provider that would not understand it."""

from __future__ import annotations

from typing import Any, Final

from thinkstop.proxy.upstreams.base import UpstreamConfigError
from thinkstop.proxy.upstreams.deadlines import FIRST_BYTE_KEY, IDLE_KEY
from thinkstop.proxy.upstreams.http_sse import LINE_KEY, MAX_LINE_BYTES

# Read by thinkstop, never sent anywhere (the stream deadlines: :mod:`.deadlines`).
OWN_KEYS: Final = frozenset({"adapter", "raw_completion", "chat_template", "think_prefix",
                             FIRST_BYTE_KEY, IDLE_KEY, LINE_KEY})
# Connection settings, consumed by the native adapters.
TRANSPORT_KEYS: Final = frozenset({"model", "api_base", "base_url", "api_key", "timeout",
                                   "extra_headers"})
# litellm knobs that mean nothing to an OpenAI-compatible server.
LITELLM_ONLY: Final = frozenset({"drop_params", "num_retries", "max_retries",
                                 "custom_llm_provider", "rpm", "tpm", "api_version",
                                 "organization", "input_cost_per_token",
                                 "output_cost_per_token", "mock_response"})
# vLLM's switch for continuing the last assistant message (the prefill strategy).
VLLM_PREFILL: Final = {"continue_final_message": True, "add_generation_prompt": False}


def api_base(params: dict[str, Any]) -> str | None:
    base = params.get("api_base") or params.get("base_url")
    return str(base) if base else None


def api_key(params: dict[str, Any]) -> str | None:
    key = params.get("api_key")
    return str(key) if key else None


def headers(params: dict[str, Any]) -> dict[str, str] | None:
    value = params.get("extra_headers")
    return value if isinstance(value, dict) else None


def timeout(params: dict[str, Any]) -> float | None:
    value = params.get("timeout")
    return float(value) if isinstance(value, int | float) else None


def max_line_bytes(model_name: str, params: dict[str, Any]) -> int:
    """``litellm_params.max_line_bytes``: the longest SSE line (bytes) read from this
    upstream before its stream fails as ``oversized``."""
    value = params.get(LINE_KEY, MAX_LINE_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise UpstreamConfigError(f"{model_name}: litellm_params.max_line_bytes: {value!r} "
                                  "is not a whole number of bytes >= 1024")
    return value


def sampling_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """Sampling defaults from the config (temperature, ...), sent with every call."""
    skip = OWN_KEYS | TRANSPORT_KEYS | LITELLM_ONLY
    defaults = {k: v for k, v in params.items() if k not in skip and k != "extra_body"}
    extra = params.get("extra_body")
    if isinstance(extra, dict):
        defaults.update(extra)
    return defaults


def bare_model(model: str) -> str:
    """``openai/qwen`` -> ``qwen`` (the name the server itself knows)."""
    _, _, bare = model.partition("/")
    return bare or model
