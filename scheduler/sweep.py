"""Vectorised replay: many policy configurations over many traces at numpy speed.

:func:`replay.replay_one` walks one trace in Python; tuning a policy means thousands of
configurations over thousands of traces, so here every trace becomes a row of padded
``(traces, steps)`` arrays. Per-boundary signals are computed once per distinct
(window, metric) with the very :class:`~scheduler.signals.SignalTracker` the live path
uses; each configuration is then a handful of array operations. Results equal the scalar
replay exactly (a property test holds them together); policies without a vectorised rule
(custom registrations) fall back to the scalar replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scheduler.answers import answers_match
from scheduler.policies import (
    ConfidencePolicy,
    ConsistencyPolicy,
    FixedPolicy,
    PlateauPolicy,
    SequentialPolicy,
)
from scheduler.policy import Guarded, Policy
from scheduler.registry import PolicySpec, create_policy
from scheduler.replay import observation, replay_one
from scheduler.signals import SignalTracker
from scheduler.trace import Trace

Bool = npt.NDArray[np.bool_]
Int = npt.NDArray[np.int64]
Float = npt.NDArray[np.float64]

_NO_LIMIT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Features:
    confidence: Float
    change: Float
    streak: Int
    answered: Bool
    repeat: Bool


@dataclass(frozen=True)
class BatchOutcome:
    """Per-trace results of one configuration."""

    spec: str
    correct: Bool
    tokens: Int
    probe_tokens: Int
    halted: Bool

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if self.correct.size else 0.0

    @property
    def mean_tokens(self) -> float:
        return float(self.tokens.mean()) if self.tokens.size else 0.0

    @property
    def mean_probe_tokens(self) -> float:
        return float(self.probe_tokens.mean()) if self.probe_tokens.size else 0.0


class TraceBatch:
    """Traces as padded arrays, with signal features cached per (window, metric)."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = list(traces)
        n = len(self.traces)
        width = max((len(t.steps) for t in self.traces), default=0)
        self.n, self.width = n, width
        self.valid = np.zeros((n, width), dtype=np.bool_)
        self.tokens = np.full((n, width), _NO_LIMIT, dtype=np.int64)
        self.cum_probe = np.zeros((n, width), dtype=np.int64)
        self.correct = np.zeros((n, width), dtype=np.bool_)
        self.hedged = np.zeros((n, width), dtype=np.bool_)
        self.nat_tokens = np.zeros(n, dtype=np.int64)
        self.nat_correct = np.zeros(n, dtype=np.bool_)
        for i, trace in enumerate(self.traces):
            k = len(trace.steps)
            self.valid[i, :k] = True
            self.tokens[i, :k] = [s.tokens for s in trace.steps]
            self.cum_probe[i, :k] = np.cumsum([s.probe_tokens for s in trace.steps])
            if k:
                self.cum_probe[i, k:] = self.cum_probe[i, k - 1]
            self.correct[i, :k] = [answers_match(s.answer, trace.expected) for s in trace.steps]
            self.hedged[i, :k] = [s.hedged for s in trace.steps]
            self.nat_tokens[i] = trace.natural.tokens
            self.nat_correct[i] = answers_match(trace.natural.answer, trace.expected)
        self.index = np.broadcast_to(np.arange(width, dtype=np.int64), (n, width))
        self._features: dict[tuple[int, str], Features] = {}

    def features(self, window: int, metric: str) -> Features:
        key = (window, metric)
        if key not in self._features:
            shape = (self.n, self.width)
            conf = np.zeros(shape)
            change = np.ones(shape)
            streak = np.zeros(shape, dtype=np.int64)
            answered = np.zeros(shape, dtype=np.bool_)
            repeat = np.zeros(shape, dtype=np.bool_)
            for i, trace in enumerate(self.traces):
                tracker = SignalTracker(window=window, metric=metric)
                previous: str | None = None
                for j, step in enumerate(trace.steps):
                    sig = tracker.update(observation(step))
                    conf[i, j], change[i, j], streak[i, j] = sig.confidence, sig.change, sig.streak
                    answered[i, j] = sig.answer is not None
                    repeat[i, j] = sig.answer is not None and sig.answer == previous
                    previous = sig.answer
            self._features[key] = Features(conf, change, streak, answered, repeat)
        return self._features[key]


def _rolling_max(values: Float, window: int) -> Float:
    """Max over the last ``window`` columns ending at each column (fewer at the start)."""
    if window == 1:
        return values
    padded = np.concatenate([np.full((values.shape[0], window - 1), np.inf), values], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)
    result: Float = view.max(axis=-1)
    return result


def _fires_consistency(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, ConsistencyPolicy)
    f = batch.features(policy.window, policy.metric)
    hedged_recent = _rolling_max(batch.hedged.astype(np.float64), policy.window) > 0
    result: Bool = f.answered & (f.streak >= policy.window) & ~hedged_recent
    return result


def _fires_confidence(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, ConfidencePolicy)
    f = batch.features(policy.window, policy.metric)
    result: Bool = f.answered & (f.confidence >= policy.threshold)
    return result


def _fires_plateau(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, PlateauPolicy)
    f = batch.features(policy.window, policy.metric)
    calm = (_rolling_max(f.change, policy.window) < policy.epsilon) & (
        batch.index >= policy.window - 1
    )
    result: Bool = calm & f.answered & (f.confidence >= policy.min_confidence)
    return result


def _fires_sequential(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, SequentialPolicy)
    f = batch.features(1, policy.metric)
    fires = np.zeros((batch.n, batch.width), dtype=np.bool_)
    stat = np.zeros(batch.n)
    increments = np.where(f.repeat, policy.up, policy.down)
    for j in range(1, batch.width):
        stat = np.maximum(0.0, stat + increments[:, j])
        fires[:, j] = stat >= policy.threshold
    return fires


def _fires_never(batch: TraceBatch, policy: Policy) -> Bool:
    return np.zeros((batch.n, batch.width), dtype=np.bool_)


_RULES: dict[type[Policy], Callable[[TraceBatch, Policy], Bool]] = {
    FixedPolicy: _fires_never,
    ConsistencyPolicy: _fires_consistency,
    ConfidencePolicy: _fires_confidence,
    PlateauPolicy: _fires_plateau,
    SequentialPolicy: _fires_sequential,
}


def _scalar(batch: TraceBatch, spec: str | PolicySpec) -> BatchOutcome:
    outs = [replay_one(t, create_policy(spec)) for t in batch.traces]
    return BatchOutcome(
        spec=str(spec),
        correct=np.array([o.correct for o in outs], dtype=np.bool_),
        tokens=np.array([o.tokens for o in outs], dtype=np.int64),
        probe_tokens=np.array([o.probe_tokens for o in outs], dtype=np.int64),
        halted=np.array([o.halted for o in outs], dtype=np.bool_),
    )


def evaluate(batch: TraceBatch, spec: str | PolicySpec) -> BatchOutcome:
    """Outcome of one configuration on every trace of the batch."""
    guarded: Guarded = create_policy(spec)
    rule = _RULES.get(type(guarded.policy))
    if rule is None:
        return _scalar(batch, spec)
    rails = guarded.rails
    n, width = batch.n, batch.width
    rows = np.arange(n)
    max_tokens = rails.max_tokens if rails.max_tokens is not None else _NO_LIMIT
    if guarded.needs_probes and width:
        observed = batch.valid & (batch.tokens <= max_tokens)
        if rails.max_probes is not None:
            observed &= batch.index < rails.max_probes
        may_halt = observed & (batch.tokens >= rails.min_tokens)
        fires = may_halt & (rule(batch, guarded.policy) | (batch.tokens >= max_tokens))
        has_halt = fires.any(axis=1)
        first = fires.argmax(axis=1)
        n_observed = observed.sum(axis=1)
    else:
        has_halt = np.zeros(n, dtype=np.bool_)
        first = np.zeros(n, dtype=np.int64)
        n_observed = np.zeros(n, dtype=np.int64)

    # Runs that never halted: natural end, or the cut at max_tokens.
    natural = batch.nat_tokens <= max_tokens
    within = (batch.valid & (batch.tokens <= max_tokens)).sum(axis=1) - 1 if width else -np.ones(n)
    last = np.clip(within, 0, None).astype(np.int64)
    has_last = within >= 0
    cut_correct = np.where(has_last, batch.correct[rows, last] if width else False, False)
    cut_tokens = np.where(has_last, batch.tokens[rows, last] if width else 0, max_tokens)
    open_correct = np.where(natural, batch.nat_correct, cut_correct)
    open_tokens = np.where(natural, batch.nat_tokens, cut_tokens)
    observed_probe = np.where(
        n_observed > 0,
        batch.cum_probe[rows, np.clip(n_observed - 1, 0, None)] if width else 0,
        0,
    )

    if width:
        halt_correct = batch.correct[rows, first]
        halt_tokens = batch.tokens[rows, first]
        halt_probe = batch.cum_probe[rows, first]
    else:
        halt_correct = np.zeros(n, dtype=np.bool_)
        halt_tokens = halt_probe = np.zeros(n, dtype=np.int64)
    return BatchOutcome(
        spec=str(spec),
        correct=np.where(has_halt, halt_correct, open_correct).astype(np.bool_),
        tokens=np.where(has_halt, halt_tokens, open_tokens).astype(np.int64),
        probe_tokens=np.where(has_halt, halt_probe, observed_probe).astype(np.int64),
        halted=(has_halt | ~natural).astype(np.bool_),
    )


def natural_outcome(batch: TraceBatch) -> BatchOutcome:
    return BatchOutcome(
        spec="natural",
        correct=batch.nat_correct.copy(),
        tokens=batch.nat_tokens.copy(),
        probe_tokens=np.zeros(batch.n, dtype=np.int64),
        halted=np.zeros(batch.n, dtype=np.bool_),
    )
