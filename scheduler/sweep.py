"""Vectorised replay: many policy configurations over many traces at numpy speed.

:func:`replay.replay_one` walks one trace in Python; tuning a policy means thousands of
configurations over thousands of traces, so here every trace becomes a row of padded
``(traces, steps)`` arrays. Per-boundary signals are computed once per distinct
(window, metric) with the very :class:`~thinkstop.scheduler.signals.SignalTracker` the live path
uses; each configuration is then a handful of array operations. Results equal the scalar
replay exactly (a property test holds them together); policies without a vectorised rule
(custom registrations) fall back to the scalar replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from thinkstop.scheduler.answers import answers_match, normalize_answer
from thinkstop.scheduler.learned import POSITION_SCALE, STREAK_CAP, LearnedPolicy
from thinkstop.scheduler.policies import (
    ConfidencePolicy,
    ConsistencyPolicy,
    FixedPolicy,
    PlateauPolicy,
    SequentialPolicy,
)
from thinkstop.scheduler.policy import Guarded, Policy
from thinkstop.scheduler.registry import PolicySpec, create_policy
from thinkstop.scheduler.replay import replay_one
from thinkstop.scheduler.signals import (
    NONE,
    OTHER,
    SignalTracker,
    normalise_alternatives,
    with_answer,
)
from thinkstop.scheduler.trace import Trace

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
    agreement: Float


@dataclass(frozen=True)
class BatchOutcome:
    """Per-trace results of one configuration."""

    spec: str
    correct: Bool
    tokens: Int
    probe_tokens: Int
    halted: Bool
    # The probes' prompts (every token read), and the part a prefix cache served.
    probe_prompt_tokens: Int | None = None
    probe_cached_tokens: Int | None = None

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if self.correct.size else 0.0

    @property
    def mean_tokens(self) -> float:
        return float(self.tokens.mean()) if self.tokens.size else 0.0

    @property
    def mean_probe_tokens(self) -> float:
        return float(self.probe_tokens.mean()) if self.probe_tokens.size else 0.0


_MAX_COLUMNS = 256  # beyond this many distinct answers, dense distributions cost too much


class TraceBatch:
    """Traces as padded arrays, with signal features cached per (window, metric).

    Answer distributions are dense ``(traces, steps, columns)`` arrays over the batch's
    answer vocabulary plus ``__other__`` and ``__none__``; with an unusually large
    vocabulary the features fall back to running the scalar tracker per trace.
    """

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = list(traces)
        n = len(self.traces)
        width = max((len(t.steps) for t in self.traces), default=0)
        self.n, self.width = n, width
        self.valid = np.zeros((n, width), dtype=np.bool_)
        self.tokens = np.full((n, width), _NO_LIMIT, dtype=np.int64)
        self.cum_probe = np.zeros((n, width), dtype=np.int64)
        self.cum_prompt = np.zeros((n, width), dtype=np.int64)
        self.cum_cached = np.zeros((n, width), dtype=np.int64)
        self.correct = np.zeros((n, width), dtype=np.bool_)
        self.hedged = np.zeros((n, width), dtype=np.bool_)
        self.repetition = np.zeros((n, width), dtype=np.float64)
        self.cue = np.zeros((n, width), dtype=np.bool_)
        self.nat_tokens = np.zeros(n, dtype=np.int64)
        self.nat_correct = np.zeros(n, dtype=np.bool_)
        self.codes = np.full((n, width), -1, dtype=np.int64)
        self.logprob = np.full((n, width), np.nan)
        self.has_alt = np.zeros((n, width), dtype=np.bool_)
        keys: dict[str | None, str | None] = {}
        vocab: dict[str, int] = {}
        alt_rows: list[tuple[int, int, dict[str, float]]] = []
        match: dict[tuple[str | None, str | None], bool] = {}

        def key_of(raw: str | None) -> str | None:
            if raw not in keys:
                keys[raw] = normalize_answer(raw)
            return keys[raw]

        def matches(raw: str | None, expected: str | None) -> bool:
            pair = (raw, expected)
            if pair not in match:
                match[pair] = answers_match(raw, expected)
            return match[pair]

        for i, trace in enumerate(self.traces):
            k = len(trace.steps)
            self.valid[i, :k] = True
            self.tokens[i, :k] = [s.tokens for s in trace.steps]
            self.cum_probe[i, :k] = np.cumsum([s.probe_tokens for s in trace.steps])
            self.cum_prompt[i, :k] = np.cumsum([s.probe_prompt_tokens for s in trace.steps])
            self.cum_cached[i, :k] = np.cumsum([s.probe_cached_tokens for s in trace.steps])
            if k:
                self.cum_probe[i, k:] = self.cum_probe[i, k - 1]
                self.cum_prompt[i, k:] = self.cum_prompt[i, k - 1]
                self.cum_cached[i, k:] = self.cum_cached[i, k - 1]
            for j, step in enumerate(trace.steps):
                key = key_of(step.answer)
                if key is not None:
                    self.codes[i, j] = vocab.setdefault(key, len(vocab))
                if step.logprob is not None:
                    self.logprob[i, j] = step.logprob
                if step.alternatives:
                    self.has_alt[i, j] = True
                    merged = with_answer(step.alternatives, step.answer, step.logprob)
                    alt_rows.append((i, j, normalise_alternatives(merged)))
                self.correct[i, j] = matches(step.answer, trace.expected)
                self.hedged[i, j] = step.hedged
                self.repetition[i, j] = step.repetition or 0.0
                self.cue[i, j] = step.cue
            self.nat_tokens[i] = trace.natural.tokens
            self.nat_correct[i] = matches(trace.natural.answer, trace.expected)
        for _, _, dist in alt_rows:
            for key in dist:
                if key not in (OTHER, NONE):
                    vocab.setdefault(key, len(vocab))
        self.other, self.none = len(vocab), len(vocab) + 1
        self.columns = len(vocab) + 2
        self.dense = self.columns <= _MAX_COLUMNS
        self.alt_dist = np.zeros((n, width, self.columns) if self.dense else (0, 0, 0))
        if self.dense:
            for i, j, dist in alt_rows:
                for key, p in dist.items():
                    col = self.other if key == OTHER else self.none if key == NONE else vocab[key]
                    self.alt_dist[i, j, col] = p
        self.index = np.broadcast_to(np.arange(width, dtype=np.int64), (n, width))
        self._features: dict[tuple[int, str], Features] = {}
        self.cache: dict[tuple[str, int, str], Float] = {}

    def features(self, window: int, metric: str) -> Features:
        key = (window, metric)
        if key not in self._features:
            build = self._dense_features if self.dense else self._scalar_features
            self._features[key] = build(window, metric)
        return self._features[key]

    def _dense_features(self, window: int, metric: str) -> Features:
        """The tracker's signals for every trace at once (equal to the scalar tracker)."""
        n, width, codes = self.n, self.width, self.codes
        answered = codes >= 0
        repeat = np.zeros((n, width), dtype=np.bool_)
        repeat[:, 1:] = answered[:, 1:] & (codes[:, 1:] == codes[:, :-1])
        streak = np.zeros((n, width), dtype=np.int64)
        if width:
            streak[:, 0] = answered[:, 0]
        for j in range(1, width):
            streak[:, j] = np.where(repeat[:, j], streak[:, j - 1] + 1, answered[:, j])

        # The tracker's recent window holds min(j + 1, window) entries, None as __none__.
        slot = np.where(answered, codes, self.none)
        agree = np.zeros((n, width))
        counts = np.zeros((n, width, self.columns))
        rows = np.arange(n)[:, None]
        cols = np.arange(width)[None, :]
        for lag in range(min(window, width)):  # a lag past the last step sees nothing
            shifted = np.full((n, width), -1, dtype=np.int64)
            shifted[:, lag:] = slot[:, : width - lag]
            present = shifted >= 0
            agree += present & answered & (shifted == codes)
            np.add.at(counts, (np.broadcast_to(rows, (n, width))[present],
                               np.broadcast_to(cols, (n, width))[present], shifted[present]), 1.0)
        agreement = np.where(answered, agree / window, 0.0)
        seen = np.minimum(np.arange(width) + 1, window).astype(np.float64)
        empirical = counts / seen[None, :, None]

        has_lp = ~np.isnan(self.logprob)
        p = np.exp(np.minimum(0.0, np.nan_to_num(self.logprob)))
        point = np.zeros((n, width, self.columns))
        safe = np.where(answered, codes, 0)
        point[rows, cols, safe] = np.where(answered, p, 0.0)
        point[:, :, self.other] += np.where(answered, 1.0 - p, 0.0)
        use_point = (has_lp & answered & ~self.has_alt)[:, :, None]
        dist = np.where(self.has_alt[:, :, None], self.alt_dist,
                        np.where(use_point, point, empirical))

        alt_conf = np.take_along_axis(self.alt_dist, safe[:, :, None], axis=2)[:, :, 0]
        confidence = np.where(
            ~answered, 0.0, np.where(has_lp, p, np.where(self.has_alt, alt_conf, agreement))
        )
        change = np.ones((n, width))
        if width > 1:
            a, b = dist[:, 1:], dist[:, :-1]
            if metric == "js":
                m = 0.5 * (a + b)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ta = np.where(a > 0, 0.5 * a * np.log2(np.where(a > 0, a, 1.0) /
                                                            np.where(m > 0, m, 1.0)), 0.0)
                    tb = np.where(b > 0, 0.5 * b * np.log2(np.where(b > 0, b, 1.0) /
                                                            np.where(m > 0, m, 1.0)), 0.0)
                change[:, 1:] = np.clip((ta + tb).sum(axis=2), 0.0, 1.0)
            else:
                change[:, 1:] = np.minimum(1.0, 0.5 * np.abs(a - b).sum(axis=2))
        return Features(confidence, change, streak, answered, repeat, agreement)

    def _scalar_features(self, window: int, metric: str) -> Features:
        shape = (self.n, self.width)
        conf = np.zeros(shape)
        change = np.ones(shape)
        streak = np.zeros(shape, dtype=np.int64)
        answered = np.zeros(shape, dtype=np.bool_)
        repeat = np.zeros(shape, dtype=np.bool_)
        agreement = np.zeros(shape)
        for i, trace in enumerate(self.traces):
            tracker = SignalTracker(window=window, metric=metric)
            previous: str | None = None
            for j, step in enumerate(trace.steps):
                sig = tracker.update(step)
                conf[i, j], change[i, j], streak[i, j] = sig.confidence, sig.change, sig.streak
                agreement[i, j] = sig.agreement
                answered[i, j] = sig.answer is not None
                repeat[i, j] = sig.answer is not None and sig.answer == previous
                previous = sig.answer
        return Features(conf, change, streak, answered, repeat, agreement)


def _rolling_max(values: Float, window: int) -> Float:
    """Max over the last ``window`` columns ending at each column (fewer at the start)."""
    result = values.copy()
    for lag in range(1, window):
        np.maximum(result[:, lag:], values[:, :-lag], out=result[:, lag:])
    return result


def _calm(batch: TraceBatch, window: int, metric: str) -> Float:
    """Largest change over the last ``window`` boundaries (cached: sweeps reuse it)."""
    key = ("calm", window, metric)
    if key not in batch.cache:
        batch.cache[key] = _rolling_max(batch.features(window, metric).change, window)
    return batch.cache[key]


def _recent_hedge(batch: TraceBatch, window: int) -> Bool:
    key = ("hedge", window, "")
    if key not in batch.cache:
        batch.cache[key] = _rolling_max(batch.hedged.astype(np.float64), window)
    result: Bool = batch.cache[key] > 0
    return result


def _fires_consistency(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, ConsistencyPolicy)
    f = batch.features(policy.window, policy.metric)
    result: Bool = f.answered & (f.streak >= policy.window) & ~_recent_hedge(batch, policy.window)
    return result


def _fires_confidence(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, ConfidencePolicy)
    f = batch.features(policy.window, policy.metric)
    result: Bool = f.answered & (f.confidence >= policy.threshold)
    return result


def _fires_plateau(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, PlateauPolicy)
    f = batch.features(policy.window, policy.metric)
    calm = (_calm(batch, policy.window, policy.metric) < policy.epsilon) & (
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


def learned_features(batch: TraceBatch, window: int) -> Float:
    """``(traces, steps, features)``: :func:`thinkstop.scheduler.learned.feature_row` for
    every step at once (``tune`` fits on these; the learned rule reads them)."""
    key = ("learned", window, "js")
    if key not in batch.cache:
        f = batch.features(window, "js")
        position = np.log1p(np.where(batch.valid, batch.tokens, 0)) / POSITION_SCALE
        batch.cache[key] = np.stack([
            f.confidence, f.change, f.agreement,
            np.minimum(f.streak, STREAK_CAP) / STREAK_CAP, batch.hedged.astype(np.float64),
            position, batch.cue.astype(np.float64), batch.repetition,
        ], axis=2)
    return batch.cache[key]


def _fires_learned(batch: TraceBatch, policy: Policy) -> Bool:
    assert isinstance(policy, LearnedPolicy)
    model = policy.model
    x = learned_features(batch, model.window)
    z = np.clip(x @ np.asarray(model.weights) + model.bias, -60.0, 60.0)
    result: Bool = batch.features(model.window, "js").answered & (
        1.0 / (1.0 + np.exp(-z)) >= policy.threshold)
    return result


def _fires_never(batch: TraceBatch, policy: Policy) -> Bool:
    return np.zeros((batch.n, batch.width), dtype=np.bool_)


_RULES: dict[type[Policy], Callable[[TraceBatch, Policy], Bool]] = {
    FixedPolicy: _fires_never,
    ConsistencyPolicy: _fires_consistency,
    ConfidencePolicy: _fires_confidence,
    PlateauPolicy: _fires_plateau,
    SequentialPolicy: _fires_sequential,
    LearnedPolicy: _fires_learned,
}


def _scalar(batch: TraceBatch, spec: str | PolicySpec) -> BatchOutcome:
    outs = [replay_one(t, create_policy(spec)) for t in batch.traces]
    observed = [sum(1 for s in t.steps[: o.probes]) for t, o in zip(batch.traces, outs,
                                                                     strict=True)]
    return BatchOutcome(
        spec=str(spec),
        correct=np.array([o.correct for o in outs], dtype=np.bool_),
        tokens=np.array([o.tokens for o in outs], dtype=np.int64),
        probe_tokens=np.array([o.probe_tokens for o in outs], dtype=np.int64),
        halted=np.array([o.halted for o in outs], dtype=np.bool_),
        probe_prompt_tokens=np.array([sum(s.probe_prompt_tokens for s in t.steps[:k])
                                      for t, k in zip(batch.traces, observed, strict=True)],
                                     dtype=np.int64),
        probe_cached_tokens=np.array([sum(s.probe_cached_tokens for s in t.steps[:k])
                                      for t, k in zip(batch.traces, observed, strict=True)],
                                     dtype=np.int64),
    )


def evaluate(batch: TraceBatch, spec: str | PolicySpec | Guarded) -> BatchOutcome:
    """Outcome of one configuration on every trace of the batch (a spec, or a policy
    already built: ``tune`` builds learned policies from fitted models)."""
    guarded: Guarded = spec if isinstance(spec, Guarded) else create_policy(spec)
    rule = _RULES.get(type(guarded.policy))
    if rule is None:
        assert not isinstance(spec, Guarded), "only vectorised policies come built"
        return _scalar(batch, spec)
    label = guarded.spec() if isinstance(spec, Guarded) else str(spec)
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
        if rails.loop is not None:
            fires |= may_halt & (batch.repetition >= rails.loop)
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
    def observed_sum(cum: Int) -> Int:
        result: Int = np.where(
            n_observed > 0, cum[rows, np.clip(n_observed - 1, 0, None)] if width else 0, 0)
        return result

    observed_probe = observed_sum(batch.cum_probe)

    if width:
        halt_correct = batch.correct[rows, first]
        halt_tokens = batch.tokens[rows, first]
        halt_probe = batch.cum_probe[rows, first]
        halt_prompt = batch.cum_prompt[rows, first]
        halt_cached = batch.cum_cached[rows, first]
    else:
        halt_correct = np.zeros(n, dtype=np.bool_)
        halt_tokens = halt_probe = halt_prompt = halt_cached = np.zeros(n, dtype=np.int64)
    return BatchOutcome(
        spec=label,
        correct=np.where(has_halt, halt_correct, open_correct).astype(np.bool_),
        tokens=np.where(has_halt, halt_tokens, open_tokens).astype(np.int64),
        probe_tokens=np.where(has_halt, halt_probe, observed_probe).astype(np.int64),
        halted=(has_halt | ~natural).astype(np.bool_),
        probe_prompt_tokens=np.where(has_halt, halt_prompt,
                                     observed_sum(batch.cum_prompt)).astype(np.int64),
        probe_cached_tokens=np.where(has_halt, halt_cached,
                                     observed_sum(batch.cum_cached)).astype(np.int64),
    )


def natural_outcome(batch: TraceBatch) -> BatchOutcome:
    return BatchOutcome(
        spec="natural",
        correct=batch.nat_correct.copy(),
        tokens=batch.nat_tokens.copy(),
        probe_tokens=np.zeros(batch.n, dtype=np.int64),
        halted=np.zeros(batch.n, dtype=np.bool_),
    )
