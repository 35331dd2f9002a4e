"""Upstream adapters by name, like the policies' registry: each model entry is built by
the adapter that claims it.

Built in, in the order they are asked (the first that claims an entry builds it):

- ``local``: ``local/<name>``, the embedded llama.cpp model;
- ``raw``: ``text-completion-openai/<name>`` or ``raw_completion: true``, the
  raw-completion adapter (needs ``api_base``);
- ``openai``: ``openai/`` or ``hosted_vllm/`` with an ``api_base``, the native
  OpenAI-compatible adapter;
- ``litellm``: every other provider.

``litellm_params.adapter: NAME`` picks one explicitly (e.g. ``adapter: litellm`` for an
OpenAI-compatible server). Adapters are imported only when an entry needs them (litellm
and llama.cpp are heavy), so the table names them by import path;
:func:`register_adapter` adds one of your own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thinkstop.proxy.upstreams.base import Upstream, UpstreamConfigError
from thinkstop.proxy.upstreams.params import api_base
from thinkstop.proxy.upstreams.providers import provider_of

Claims = Callable[[str, dict[str, Any]], bool]  # (provider, litellm_params) -> claimed?


@dataclass(frozen=True, slots=True)
class Adapter:
    """``target`` is ``module:Class``; the class has ``from_params(model_name, params)``."""

    name: str
    target: str
    claims: Claims

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(name: str, target: str, claims: Claims = lambda _p, _q: False) -> None:
    """Add an adapter; one registered later is asked after the built-in ones."""
    ADAPTERS[name] = Adapter(name, target, claims)


register_adapter("local", "thinkstop.proxy.upstreams.local.adapter:LocalUpstream",
                 lambda provider, _: provider == "local")
register_adapter("raw", "thinkstop.proxy.upstreams.raw_completion:RawCompletionUpstream",
                 lambda provider, p: bool(p.get("raw_completion"))
                 or provider == "text-completion-openai")
register_adapter("openai", "thinkstop.proxy.upstreams.openai_chat:OpenAIChatUpstream",
                 lambda provider, p: provider in ("openai", "hosted_vllm")
                 and api_base(p) is not None)
register_adapter("litellm", "thinkstop.proxy.upstreams.litellm_chat:LiteLLMChatUpstream",
                 lambda _provider, _p: True)


def choose_adapter(params: dict[str, Any]) -> Adapter:
    """The adapter for one entry's ``litellm_params`` (``model`` already checked)."""
    chosen = params.get("adapter")
    if chosen is not None:
        if chosen not in ADAPTERS:
            raise UpstreamConfigError(
                f"litellm_params.adapter: {chosen!r} is not one of {', '.join(ADAPTERS)}")
        return ADAPTERS[str(chosen)]
    provider = provider_of(str(params["model"]))
    return next(a for a in ADAPTERS.values() if a.claims(provider, params))


def build_upstream(model_name: str, litellm_params: dict[str, Any]) -> Upstream:
    """The upstream for one ``model_list`` entry."""
    params = dict(litellm_params)
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise UpstreamConfigError(f"{model_name}: litellm_params.model is required")
    adapter = choose_adapter(params)
    try:
        cls = adapter.load()
    except ImportError as exc:
        raise UpstreamConfigError(
            f"{model_name}: the {adapter.name} adapter cannot be imported ({exc}); "
            + ("install the 'local' extra: pip install 'thinkstop[local]'"
               if adapter.name == "local" else "is thinkstop installed completely?")
        ) from exc
    upstream: Upstream = cls.from_params(model_name, params)
    return upstream
