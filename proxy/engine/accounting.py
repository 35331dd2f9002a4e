"""Token accounting for one request, and the ``thinkstop`` decision object clients see.

Every upstream call is counted: the main stream, every probe, the continuation. Exact
counts come from an upstream's usage report; a stream the proxy cut has none, so its
tokens are the ones counted as they arrived (see :mod:`thinkstop.proxy.upstreams.tokens`).

- ``reasoning_tokens``: the main stream's reasoning that was used (streamed, and given to
  the continuation); ``reasoning_tokens_discarded``: reasoning the upstream generated
  after the halt point (already in flight), paid for but not used, including
  ``cut_snapped_tokens``: a partial word at the halt point, dropped so that the reasoning
  the continuation reads ends at a whole word.
- ``probe_tokens``: tokens the probes generated; their prompts count in ``prompt_tokens``
  and, apart, in ``probe_prompt_tokens``, of which ``probe_cached_tokens`` a prefix cache
  served (the embedded model's, vLLM's and SGLang's prefix caches, providers' prompt
  caching): cheap or free to compute, billed at a discount by most providers.
- ``answer_tokens``: the answer (the model's own after natural thinking, or the
  continuation's).
- usage ``completion_tokens_details.reasoning_tokens`` = reasoning (used and discarded) +
  probe tokens + any reasoning the continuation did; ``completion_tokens`` = that + answer tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thinkstop.proxy.upstreams.base import ToolCallDelta, Usage


@dataclass
class CallCount:
    """Tokens of one streamed upstream call: counted as they arrive, exact when reported."""

    prompt_estimate: int = 0
    reasoning: int = 0
    content: int = 0
    discarded: int = 0  # reasoning generated after a halt: paid for, never used
    exact: Usage | None = None

    def usage(self) -> Usage:
        if self.exact is None:
            spent = self.reasoning + self.discarded
            return Usage(self.prompt_estimate, spent + self.content, spent)
        reasoning = self.exact.reasoning_tokens or min(self.reasoning, self.exact.completion_tokens)
        return Usage(
            self.exact.prompt_tokens or self.prompt_estimate,
            max(self.exact.completion_tokens, reasoning),
            reasoning,
            self.exact.cached_prompt_tokens,
        )


@dataclass
class RunResult:
    """Everything the proxy reports about one request's halting and spending."""

    policy: str
    enabled: bool = True
    halted: bool = False
    reason: str = "natural"
    strategy: str | None = None
    finish_reason: str = "stop"
    main: CallCount = field(default_factory=CallCount)
    continuation: CallCount | None = None
    probe_usage: Usage = field(default_factory=Usage)
    probes: int = 0
    probes_observed: int = 0
    probes_failed: int = 0
    probes_skipped: int = 0
    probes_shed: int = 0  # of the skipped: the replica was at max_probes_in_flight
    upstream_closed_early: bool = False
    chunk_tokens: int = 0
    max_tokens: int | None = None
    signals: dict[str, object] | None = None
    budget_cap: int | None = None  # the per-request reasoning cap from a budget, if any
    cut_snapped_tokens: int = 0  # a partial word dropped at the halt (in discarded too)
    probe_model: str | None = None  # the model that answered the probes, when not this one
    probe_seconds: float = 0.0  # wall time of the probes that answered
    # Per observed probe: reasoning tokens that streamed past its boundary before its
    # verdict arrived. It grows when probes cannot keep up with the stream (a busy
    # replica, a slow probe model), and then halts come late or not at all.
    probe_lags: list[int] = field(default_factory=list)
    halt_mode: str = "hard"  # "soft": a wrap-up cue and grace reasoning before the answer
    probes_unavailable: bool = False
    retries: int = 0  # main-stream opens retried before the first byte
    faults: list[str] = field(default_factory=list)
    failed_calls: list[CallCount] = field(default_factory=list)  # failed continuations
    # Why the request was passed through unmonitored (reason "passthrough"), if it was.
    passthrough: str | None = None
    shadow: bool = False  # probed and decided, never halted (shadow mode)
    would_halt: dict[str, Any] | None = None  # shadow: where the policy would have halted
    anchors: dict[str, Any] | None = None  # worked examples added: count, about how many tokens
    # Whether the decision's signals may carry the probes' answer text (see decision()).
    expose_probe_answers: bool = False

    @property
    def reasoning_tokens(self) -> int:
        """Reasoning used: streamed to the client and given to the continuation."""
        return self.main.usage().reasoning_tokens - self.main.discarded

    @property
    def probe_tokens(self) -> int:
        return self.probe_usage.completion_tokens

    @property
    def answer_tokens(self) -> int:
        main = self.main.usage()
        answer = main.completion_tokens - main.reasoning_tokens
        if self.continuation is not None:
            cont = self.continuation.usage()
            answer += cont.completion_tokens - cont.reasoning_tokens
        return answer

    def usage(self) -> Usage:
        """All calls summed; probe output counts as reasoning."""
        total = self.main.usage() + Usage(
            self.probe_usage.prompt_tokens,
            self.probe_usage.completion_tokens,
            self.probe_usage.completion_tokens,
            self.probe_usage.cached_prompt_tokens,
        )
        if self.continuation is not None:
            total = total + self.continuation.usage()
        for failed in self.failed_calls:
            total = total + failed.usage()
        return total

    def tokens_saved_vs_budget(self) -> int:
        """Reasoning budget left unspent by a halt, net of probe tokens (0 when unknown).

        An upper bound on the real saving: it assumes the model would have thought up to
        its ``max_tokens`` budget. Replays of recorded traces measure the real saving.
        """
        if not self.halted or self.max_tokens is None or self.reason == "max_tokens":
            return 0
        return max(0, self.max_tokens - self.reasoning_tokens - self.probe_tokens)

    def usage_dict(self) -> dict[str, Any]:
        return usage_dict(self.usage())

    def visible_signals(self) -> dict[str, object] | None:
        """The last decision's signals as the client sees them: without the probe's
        answer text unless the model's config sets ``expose_probe_answers``. A probe is
        the model answering a prompt the client never wrote; its text can carry what the
        model was told not to say (a system prompt a probe got it to print), and the
        client gets the real answer anyway."""
        if self.signals is None or self.expose_probe_answers:
            return self.signals
        return {k: v for k, v in self.signals.items() if k != "answer"}

    def decision(self) -> dict[str, Any]:
        """The top-level ``thinkstop`` object of the response."""
        return {
            "halted": self.halted,
            "reason": self.reason,
            "policy": self.policy,
            "reasoning_tokens": self.reasoning_tokens,
            "reasoning_tokens_discarded": self.main.discarded,
            "cut_snapped_tokens": self.cut_snapped_tokens,
            "probe_tokens": self.probe_tokens,
            "probe_prompt_tokens": self.probe_usage.prompt_tokens,
            "probe_cached_tokens": self.probe_usage.cached_prompt_tokens,
            "probe_model": self.probe_model,
            "probe_seconds": round(self.probe_seconds, 3),
            "probe_lag_tokens": max(self.probe_lags) if self.probe_lags else None,
            "halt_mode": self.halt_mode,
            "probes": self.probes,
            "answer_tokens": self.answer_tokens,
            "strategy": self.strategy,
            "enabled": self.enabled,
            "probes_observed": self.probes_observed,
            "probes_failed": self.probes_failed,
            "probes_skipped": self.probes_skipped,
            "probes_shed": self.probes_shed,
            "chunk_tokens": self.chunk_tokens,
            "upstream_closed_early": self.upstream_closed_early,
            "signals": self.visible_signals(),
            "budget_cap": self.budget_cap,
            "probes_unavailable": self.probes_unavailable,
            "faults": list(self.faults),
            "passthrough": self.passthrough,
            "shadow": self.shadow,
            "would_halt": self.would_halt,
            "anchors": self.anchors,
        }


def usage_dict(usage: Usage) -> dict[str, Any]:
    """``usage`` in the OpenAI chat shape (one run's, or several runs' summed)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
    }


def tool_call_tokens(count: Callable[[str], int], call: ToolCallDelta) -> int:
    """Tokens of one tool-call piece: its name (on the first piece) and arguments text,
    which the model generated as answer tokens."""
    return count((call.name or "") + call.arguments)
