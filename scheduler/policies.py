"""The built-in halting policies.

Each reads the :class:`~thinkstop.scheduler.signals.Signals` of the latest boundary (and keeps any
state it needs) and answers halt or go on. Parameters are plain keyword arguments, checked
in ``__init__`` so that a bad spec fails before any model call.
"""

from __future__ import annotations

import math
from typing import ClassVar

from thinkstop.scheduler.policy import Policy
from thinkstop.scheduler.signals import Signals


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class FixedPolicy(Policy):
    """Truncate at ``budget`` reasoning tokens; never probes.

    The cut itself is a guard-rail (``max_tokens = budget``) so that the proxy enforces it
    between probes; the policy never halts on its own.
    """

    name: ClassVar[str] = "fixed"
    needs_probes: ClassVar[bool] = False

    def __init__(self, budget: int = 2048) -> None:
        _check(budget >= 0, "fixed: budget must be >= 0")
        super().__init__()
        self.budget = budget

    def params(self) -> dict[str, object]:
        return {"budget": self.budget}

    def decide(self, signals: Signals) -> tuple[bool, str]:
        return False, "continue"


class ConsistencyPolicy(Policy):
    """Halt when the last ``window`` probe answers are equal and none of them hedged.

    In the spirit of Dynasor's certainty check, but a disagreement always means go on.
    """

    name: ClassVar[str] = "consistency"

    def __init__(self, window: int = 3) -> None:
        _check(window >= 1, "consistency: window must be >= 1")
        super().__init__(window=window)
        self._hedged_recent: list[bool] = []

    def decide(self, signals: Signals) -> tuple[bool, str]:
        self._hedged_recent = [*self._hedged_recent, signals.hedged][-self.window :]
        if signals.answer is None or signals.streak < self.window:
            return False, "answers_differ"
        if any(self._hedged_recent):
            return False, "hedging"
        return True, "consistent"


class ConfidencePolicy(Policy):
    """Halt when the current answer's probability reaches ``threshold`` (DEER-like).

    Probability comes from token logprobs when the upstream gives them, else from
    agreement over the last ``window`` probes.
    """

    name: ClassVar[str] = "confidence"

    def __init__(self, threshold: float = 0.9, window: int = 3) -> None:
        _check(0.0 < threshold <= 1.0, "confidence: threshold must be in (0, 1]")
        _check(window >= 1, "confidence: window must be >= 1")
        super().__init__(window=window)
        self.threshold = threshold

    def params(self) -> dict[str, object]:
        return {"threshold": self.threshold, "window": self.window}

    def decide(self, signals: Signals) -> tuple[bool, str]:
        if signals.answer is not None and signals.confidence >= self.threshold:
            return True, "confident"
        return False, "low_confidence"


class PlateauPolicy(Policy):
    """Halt once the answer distribution stops moving: the default policy.

    Halts when the change between consecutive boundaries (Jensen-Shannon by default) has
    stayed below ``epsilon`` for ``window`` boundaries in a row and the current answer's
    confidence is at least ``min_confidence``. The first boundary counts as maximal change.
    """

    name: ClassVar[str] = "plateau"

    def __init__(
        self,
        window: int = 2,
        epsilon: float = 0.1,
        min_confidence: float = 0.6,
        metric: str = "js",
    ) -> None:
        _check(window >= 1, "plateau: window must be >= 1")
        _check(0.0 < epsilon <= 1.0, "plateau: epsilon must be in (0, 1]")
        _check(0.0 <= min_confidence <= 1.0, "plateau: min_confidence must be in [0, 1]")
        _check(metric in {"js", "tv"}, "plateau: metric must be 'js' or 'tv'")
        super().__init__(window=window, metric=metric)
        self.epsilon = epsilon
        self.min_confidence = min_confidence
        self._calm = 0

    def params(self) -> dict[str, object]:
        out: dict[str, object] = {
            "window": self.window,
            "epsilon": self.epsilon,
            "min_confidence": self.min_confidence,
        }
        if self.metric != "js":
            out["metric"] = self.metric
        return out

    def decide(self, signals: Signals) -> tuple[bool, str]:
        self._calm = self._calm + 1 if signals.change < self.epsilon else 0
        if self._calm < self.window:
            return False, "changing"
        if signals.answer is None or signals.confidence < self.min_confidence:
            return False, "low_confidence"
        return True, "plateau"


class SequentialPolicy(Policy):
    """A one-sided sequential test (Page's CUSUM of Wald log-likelihood ratios).

    At each boundary we see one Bernoulli observation: did the probe repeat the previous
    probe's answer (both present)? Two regimes compete. While the model is still working
    the answer out, repeats happen with probability ``p0`` (default 0.5, a coin flip);
    once it has *settled*, with probability ``p1`` (default 0.9). Each observation adds
    its log-likelihood ratio, ``log(p1/p0)`` for a repeat and ``log((1-p1)/(1-p0))`` for a
    change, to a running statistic floored at zero, so evidence from before the last
    change of mind is forgotten (that is what makes it a change-point detector rather than
    a single test from the start). We halt when the statistic crosses ``log(1/alpha)``:
    by Wald's inequality, a run drawn entirely from the unsettled regime crosses it with
    probability at most ``alpha`` per excursion. Unlike a fixed window, the evidence
    needed adapts: a change of mind costs more than one repeat earns, so a model that keeps
    flipping needs a long unbroken run before it is believed.
    """

    name: ClassVar[str] = "sprt"

    def __init__(self, p0: float = 0.5, p1: float = 0.9, alpha: float = 0.05) -> None:
        _check(0.0 < p0 < p1 < 1.0, "sprt: need 0 < p0 < p1 < 1")
        _check(0.0 < alpha < 1.0, "sprt: alpha must be in (0, 1)")
        super().__init__(window=1)
        self.p0, self.p1, self.alpha = p0, p1, alpha
        self.up = math.log(p1 / p0)
        self.down = math.log((1.0 - p1) / (1.0 - p0))
        self.threshold = math.log(1.0 / alpha)
        self.statistic = 0.0
        self._previous: str | None = None
        self._observed = False

    def params(self) -> dict[str, object]:
        return {"p0": self.p0, "p1": self.p1, "alpha": self.alpha}

    def decide(self, signals: Signals) -> tuple[bool, str]:
        repeat = signals.answer is not None and signals.answer == self._previous
        if self._observed:
            # The first probe has nothing to repeat: it is not evidence either way.
            self.statistic = max(0.0, self.statistic + (self.up if repeat else self.down))
        self._observed = True
        self._previous = signals.answer
        if self.statistic >= self.threshold:
            return True, "sequential_test"
        return False, "insufficient_evidence"


BUILTIN_POLICIES: tuple[type[Policy], ...] = (
    FixedPolicy,
    ConsistencyPolicy,
    ConfidencePolicy,
    PlateauPolicy,
    SequentialPolicy,
)
