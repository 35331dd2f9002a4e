"""The halting-policy interface, the decision it returns, and the guard-rails around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from thinkstop.scheduler.signals import Observation, Signals, SignalTracker


@dataclass(frozen=True, slots=True)
class Decision:
    """Halt or go on, why, and the signals the decision was made from."""

    halt: bool
    reason: str
    signals: Signals | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "halt": self.halt,
            "reason": self.reason,
            "signals": self.signals.as_dict() if self.signals else None,
        }


class Policy:
    """Base class: one object per request, fed one observation per chunk boundary.

    Subclasses set ``name``, accept their parameters as keyword arguments, and implement
    :meth:`decide` from the tracked signals. ``needs_probes`` is False for policies that
    never look at answers (``fixed``), so the proxy spends nothing on probes for them.
    """

    name: ClassVar[str] = "policy"
    needs_probes: ClassVar[bool] = True

    def __init__(self, window: int = 3, metric: str = "js") -> None:
        self.window = window
        self.metric = metric
        self.tracker = SignalTracker(window=window, metric=metric)

    def params(self) -> dict[str, object]:
        """The parameters this policy was built with (for reports and specs)."""
        return {"window": self.window}

    def spec(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}:{args}" if args else self.name

    def observe(self, obs: Observation) -> Decision:
        signals = self.tracker.update(obs)
        halt, reason = self.decide(signals)
        return Decision(halt=halt, reason=reason, signals=signals)

    def decide(self, signals: Signals) -> tuple[bool, str]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class GuardRails:
    """Limits that hold whatever the policy says.

    ``min_tokens``: never halt before this much reasoning. ``max_tokens``: always halt at
    this much reasoning (the proxy cuts the stream there even between probes).
    ``max_probes``: stop probing after this many; the stream then runs to its natural end
    or to ``max_tokens``. ``loop``: halt (``reason: "loop"``) once the reasoning repeats
    itself this much (:func:`thinkstop.scheduler.signals.repetition`, 0 to 1): a loop never
    plateaus, and would otherwise run to ``max_tokens``.
    """

    min_tokens: int = 0
    max_tokens: int | None = None
    max_probes: int | None = None
    loop: float | None = None

    def __post_init__(self) -> None:
        if self.min_tokens < 0:
            raise ValueError("min_tokens must be >= 0")
        if self.max_tokens is not None and self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if self.max_probes is not None and self.max_probes < 0:
            raise ValueError("max_probes must be >= 0")
        if self.loop is not None and not 0.0 < self.loop <= 1.0:
            raise ValueError("loop must be in (0, 1]")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(
                f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})"
            )


@dataclass
class Guarded:
    """A policy wrapped in guard-rails: what the proxy and replay actually run."""

    policy: Policy
    rails: GuardRails = field(default_factory=GuardRails)
    probes: int = 0

    @property
    def needs_probes(self) -> bool:
        return self.policy.needs_probes

    @property
    def max_tokens(self) -> int | None:
        return self.rails.max_tokens

    def spec(self) -> str:
        return self.policy.spec()

    def wants_probe(self, tokens: int) -> bool:
        """Whether a probe at ``tokens`` reasoning tokens would be observed."""
        if not self.policy.needs_probes:
            return False
        if self.rails.max_probes is not None and self.probes >= self.rails.max_probes:
            return False
        return self.rails.max_tokens is None or tokens <= self.rails.max_tokens

    def over_budget(self, tokens: int) -> bool:
        """True once reasoning has reached ``max_tokens``: the stream must stop here."""
        return self.rails.max_tokens is not None and tokens >= self.rails.max_tokens

    def observe(self, obs: Observation) -> Decision:
        if self.rails.max_probes is not None and self.probes >= self.rails.max_probes:
            return Decision(halt=False, reason="max_probes")
        self.probes += 1
        # The inner policy always sees the observation so its signal history stays whole.
        decision = self.policy.observe(obs)
        if obs.tokens < self.rails.min_tokens:
            return Decision(halt=False, reason="min_tokens", signals=decision.signals)
        if self.over_budget(obs.tokens):
            return Decision(halt=True, reason="max_tokens", signals=decision.signals)
        loop = self.rails.loop
        if loop is not None and obs.repetition is not None and obs.repetition >= loop:
            return Decision(halt=True, reason="loop", signals=decision.signals)
        return decision
