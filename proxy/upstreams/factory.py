"""Build one upstream from a model entry's ``litellm_params``.

- ``local/<name>``: the embedded llama.cpp model (``thinkstop.proxy.upstreams.local.adapter.LocalUpstream``).
- ``text-completion-openai/<name>``, ``raw_completion: true`` or ``adapter: raw``: the
  raw-completion adapter (needs ``api_base``).
- ``openai/`` or ``hosted_vllm/`` with an ``api_base``: the native OpenAI-compatible
  adapter (``adapter: litellm`` forces litellm instead).
- everything else: litellm chat.

Keys the proxy reads itself (``adapter``, ``raw_completion``, ``chat_template``,
``think_prefix``) never reach the provider.
"""

from __future__ import annotations

from typing import Any, Final

from thinkstop.proxy.upstreams.base import Upstream
from thinkstop.proxy.upstreams.providers import capabilities_for, provider_of

# Read by thinkstop, not sent anywhere.
OWN_KEYS: Final = frozenset({"adapter", "raw_completion", "chat_template", "think_prefix"})
# Connection settings, consumed by the native adapters.
TRANSPORT_KEYS: Final = frozenset({"model", "api_base", "base_url", "api_key", "timeout",
                                   "extra_headers"})
# litellm knobs that mean nothing to an OpenAI-compatible server.
LITELLM_ONLY: Final = frozenset({"drop_params", "num_retries", "max_retries",
                                 "custom_llm_provider", "rpm", "tpm", "api_version",
                                 "organization", "input_cost_per_token",
                                 "output_cost_per_token", "mock_response"})
ADAPTERS: Final = ("raw", "openai", "litellm")
_VLLM_PREFILL: Final = {"continue_final_message": True, "add_generation_prompt": False}


class UpstreamConfigError(ValueError):
    """A model entry cannot be turned into an upstream; the message names the problem."""


def _adapter(params: dict[str, Any], provider: str) -> str:
    chosen = params.get("adapter")
    if chosen is not None and chosen not in ADAPTERS:
        raise UpstreamConfigError(
            f"litellm_params.adapter: {chosen!r} is not one of {', '.join(ADAPTERS)}"
        )
    if chosen:
        return str(chosen)
    if params.get("raw_completion") or provider == "text-completion-openai":
        return "raw"
    if provider in ("openai", "hosted_vllm") and _api_base(params):
        return "openai"
    return "litellm"


def _api_base(params: dict[str, Any]) -> str | None:
    base = params.get("api_base") or params.get("base_url")
    return str(base) if base else None


def _defaults(params: dict[str, Any]) -> dict[str, Any]:
    """Sampling defaults from the config (temperature, ...), sent with every call."""
    skip = OWN_KEYS | TRANSPORT_KEYS | LITELLM_ONLY
    defaults = {k: v for k, v in params.items() if k not in skip and k != "extra_body"}
    extra = params.get("extra_body")
    if isinstance(extra, dict):
        defaults.update(extra)
    return defaults


def _local(params: dict[str, Any]) -> Upstream:
    try:
        from thinkstop.proxy.upstreams.local.adapter import LocalUpstream
    except ImportError as exc:
        raise UpstreamConfigError(
            f"model {params['model']!r} needs the embedded llama.cpp adapter "
            f"(thinkstop.proxy.upstreams.local.adapter), which cannot be imported: {exc}. Install the "
            "'local' extra (pip install 'thinkstop[local]') or point the config at a server."
        ) from exc
    upstream: Upstream = LocalUpstream.from_params(params)
    return upstream


def build_upstream(model_name: str, litellm_params: dict[str, Any]) -> Upstream:
    """The upstream for one ``model_list`` entry."""
    params = dict(litellm_params)
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise UpstreamConfigError(f"{model_name}: litellm_params.model is required")
    provider = provider_of(model)
    if provider == "local":
        return _local(params)
    _, _, bare = model.partition("/")
    bare = bare or model
    adapter = _adapter(params, provider)
    headers = params.get("extra_headers") if isinstance(params.get("extra_headers"), dict) else None
    timeout = params.get("timeout")
    timeout = float(timeout) if isinstance(timeout, int | float) else None
    api_key = params.get("api_key")
    api_key = str(api_key) if api_key else None
    if adapter in ("raw", "openai"):
        api_base = _api_base(params)
        if api_base is None:
            raise UpstreamConfigError(
                f"{model_name}: litellm_params.api_base is required for the {adapter} adapter"
            )
        if adapter == "raw":
            from thinkstop.proxy.upstreams.raw_completion import RawCompletionUpstream

            try:
                return RawCompletionUpstream(
                    model_name, bare, api_base=api_base, api_key=api_key,
                    chat_template=params.get("chat_template"),
                    think_prefix=str(params.get("think_prefix", "<think>\n")),
                    headers=headers, timeout=timeout, defaults=_defaults(params),
                )
            except ValueError as exc:
                raise UpstreamConfigError(f"{model_name}: litellm_params.{exc}") from exc
        from thinkstop.proxy.upstreams.openai_chat import OpenAIChatUpstream

        return OpenAIChatUpstream(
            model_name, bare, api_base=api_base, api_key=api_key, headers=headers,
            timeout=timeout, capabilities=capabilities_for(model), defaults=_defaults(params),
            prefill_body=_VLLM_PREFILL if provider == "hosted_vllm" else None,
        )
    from thinkstop.proxy.upstreams.litellm_chat import LiteLLMChatUpstream

    litellm_params_only = {k: v for k, v in params.items() if k not in OWN_KEYS}
    litellm_params_only.pop("model", None)
    return LiteLLMChatUpstream(
        model_name, model, params=litellm_params_only, capabilities=capabilities_for(model),
        prefill_body=_VLLM_PREFILL if provider == "hosted_vllm" else None,
    )
