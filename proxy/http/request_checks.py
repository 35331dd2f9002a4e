"""Checks and policy for one chat request, before anything is sent upstream.

- unsupported features get a clear 400 (``n > 1``: the halting loop follows one reasoning
  stream; tools: tool calls are not relayed by the loop, so they would be lost);
- the request's options become a guarded policy; a bad combination is a 422 naming the
  ``thinkstop`` field;
- a budget's per-request reasoning cap tightens the ``max_tokens`` guard-rail, whatever
  the policy spec or the request asked for.
"""

from __future__ import annotations

from typing import Final

from thinkstop.proxy.config import ThinkstopOptions
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.http.protocol import ChatCompletionRequest
from thinkstop.scheduler import DEFAULT_POLICY, Guarded, GuardRails, PolicySpecError, create_policy

# Request fields asking for function calling, which the halting loop does not relay.
TOOL_FIELDS: Final = ("tools", "tool_choice", "functions", "function_call")


def check_supported(body: ChatCompletionRequest) -> None:
    """Raise a 400 for what thinkstop cannot serve faithfully."""
    if body.n is not None and body.n > 1:
        raise ProxyError(400, f"n={body.n} is not supported: thinkstop follows one reasoning "
                         "stream per request; send n separate requests", param="n",
                         code="unsupported_parameter")
    extra = body.model_extra or {}
    for name in TOOL_FIELDS:
        if extra.get(name) not in (None, [], {}):
            raise ProxyError(400, f"{name} is not supported: thinkstop does not relay tool "
                             "calls; call the upstream directly for function calling",
                             param=name, code="unsupported_parameter")


def build_policy(options: ThinkstopOptions, cap: int | None) -> Guarded:
    """The request's guarded policy; ``cap`` (a budget) bounds ``max_tokens`` from above."""
    try:
        rails = GuardRails(min_tokens=options.min_tokens or 0, max_tokens=options.max_tokens,
                           max_probes=options.max_probes)
        policy = create_policy(options.policy or DEFAULT_POLICY, rails)
    except (PolicySpecError, ValueError) as exc:
        raise ProxyError(422, f"thinkstop: {exc}", code="invalid_thinkstop",
                         param="thinkstop") from None
    if cap is None or (policy.max_tokens is not None and policy.max_tokens <= cap):
        return policy
    capped = GuardRails(min_tokens=min(policy.rails.min_tokens, cap), max_tokens=cap,
                        max_probes=policy.rails.max_probes)
    return Guarded(policy=policy.policy, rails=capped)


def cap_binds(policy: Guarded, cap: int | None) -> bool:
    """Whether the budget's cap is the ``max_tokens`` cut in force."""
    return cap is not None and policy.max_tokens == cap
