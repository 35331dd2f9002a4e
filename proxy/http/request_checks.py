"""What the halting loop can follow in a request, and the request's policy.

- :func:`passthrough_reason`: what the loop cannot monitor (legacy ``functions``, custom
  tools, audio output) is passed through untouched, and the decision says why;
- :func:`continuation_for`: a request that offers tools needs a continuation that carries
  them (``Strategy.tools``), so that the model's own next step after a halt may be a tool
  call; ``auto`` (or a configured strategy that cannot) becomes the best one that can,
  and an upstream with none (raw completion, the embedded model) cannot serve tools: 400;
- :func:`build_policy`: the request's options become a guarded policy; a bad combination
  is a 400 naming the ``thinkstop`` field; a budget's per-request reasoning cap tightens
  the ``max_tokens`` guard-rail, whatever the policy spec or the request asked for.
"""

from __future__ import annotations

from typing import Any, Final

from thinkstop.proxy.config import ThinkstopOptions
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.upstreams.base import Continuation, Upstream
from thinkstop.proxy.upstreams.strategies import carrying_tools
from thinkstop.scheduler import DEFAULT_POLICY, Guarded, GuardRails, PolicySpecError, create_policy

# Legacy function calling: the loop relays tool_calls, not the older function_call deltas.
LEGACY_FUNCTION_FIELDS: Final = ("functions", "function_call")


def passthrough_reason(params: dict[str, Any]) -> str | None:
    """Why the halting loop cannot follow a request with these upstream ``params`` (so
    it is passed through untouched), or None when it can."""
    for name in LEGACY_FUNCTION_FIELDS:
        if params.get(name):
            return (f"{name}: legacy function calling is relayed untouched; the halting "
                    "loop follows tool_calls")
    kinds = sorted({str(t.get("type")) for t in params.get("tools") or ()
                    if isinstance(t, dict)} - {"function"})
    if kinds:
        return (f"tools of type {', '.join(kinds)}: relayed untouched; the halting loop "
                "follows function tools")
    modalities = params.get("modalities") or ()
    if params.get("audio") or "audio" in modalities:
        return "audio output: relayed untouched; the halting loop follows text"
    return None


def continuation_for(model: str, upstream: Upstream, configured: Continuation | None,
                     *, tools: bool) -> tuple[Continuation | None, tuple[Continuation, ...]]:
    """The continuation and its fallbacks for one request on ``upstream``."""
    offered = upstream.capabilities.continuations
    if not tools or not offered:  # no continuation at all: budget guard-rails only
        return configured, offered
    carrying = carrying_tools(offered)
    if not carrying:
        raise ProxyError(
            400, f"tools: model {model!r} is served through an upstream whose continuations "
            f"({', '.join(offered)}) cannot carry tools, so a tool call could not be "
            "relayed; serve it through a chat API (adapter: openai or litellm)",
            param="tools", code="unsupported_parameter")
    chosen = configured if configured in carrying else carrying[0]
    return chosen, carrying


def build_policy(options: ThinkstopOptions, cap: int | None) -> Guarded:
    """The request's guarded policy; ``cap`` (a budget) bounds ``max_tokens`` from above."""
    try:
        rails = GuardRails(min_tokens=options.min_tokens or 0, max_tokens=options.max_tokens,
                           max_probes=options.max_probes, loop=options.loop)
        policy = create_policy(options.policy or DEFAULT_POLICY, rails)
    except (PolicySpecError, ValueError) as exc:
        raise ProxyError(400, f"thinkstop: {exc}", code="invalid_thinkstop",
                         param="thinkstop") from None
    if cap is None or (policy.max_tokens is not None and policy.max_tokens <= cap):
        return policy
    capped = GuardRails(min_tokens=min(policy.rails.min_tokens, cap), max_tokens=cap,
                        max_probes=policy.rails.max_probes, loop=policy.rails.loop)
    return Guarded(policy=policy.policy, rails=capped)


def cap_binds(policy: Guarded, cap: int | None) -> bool:
    """Whether the budget's cap is the ``max_tokens`` cut in force."""
    return cap is not None and policy.max_tokens == cap
