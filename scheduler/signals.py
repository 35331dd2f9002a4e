"""Signals measured at each chunk boundary: confidence, answer distribution, change, hedging.

The same :class:`SignalTracker` serves the live proxy and offline replay, so a policy sees
identical numbers in both.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from thinkstop.scheduler.answers import normalize_answer

OTHER: Final = "__other__"
NONE: Final = "__none__"

# Words that signal the model is reconsidering. Matched on word boundaries so that "no"
# never fires inside "know" or "not", nor "hold" inside "threshold".
_HEDGES: Final = re.compile(
    r"\b(?:wait|hmm+|no|but wait|actually|hold on|let me re-?check|let me reconsider|"
    r"on second thought|alternatively|double-check|re-?evaluate|i'm not sure|not sure)\b",
    re.IGNORECASE,
)


# Where a reasoning model changes course: the points where a probe learns the most (DEER,
# Yang et al. 2025, probes at "Wait"). Word boundaries, as above.
_CUES: Final = re.compile(
    r"\b(?:wait|hmm+|alternatively|actually|but then|on second thought|let me "
    r"(?:double-check|re-?check|verify|reconsider|think again)|however)\b",
    re.IGNORECASE,
)
_WORD: Final = re.compile(r"\w+")
REPETITION_NGRAM: Final = 6
REPETITION_WINDOW: Final = 600  # words


def has_cue(text: str) -> bool:
    """True when ``text`` changes course ("Wait", "Alternatively", "let me double-check")."""
    return _CUES.search(text) is not None


def repetition(text: str, n: int = REPETITION_NGRAM, window: int = REPETITION_WINDOW) -> float:
    """How much the last ``window`` words of ``text`` repeat themselves: the share of its
    word ``n``-grams seen before within the window (0: none repeats; near 1: a loop).
    A reasoning loop writes the same sentences again and again; fresh reasoning rarely
    repeats six words in a row."""
    words = [w.lower() for w in _WORD.findall(text)][-window:]
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 2:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def find_hedges(text: str) -> list[str]:
    """Hedging words and phrases in ``text``, lower-cased, in order."""
    return [m.group(0).lower() for m in _HEDGES.finditer(text)]


def is_hedging(text: str) -> bool:
    """True when ``text`` contains a hedging word on word boundaries."""
    return _HEDGES.search(text) is not None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe at one chunk boundary saw.

    ``answer`` is the raw probe answer (normalised here); ``logprob`` its total log
    probability over all its tokens; ``alternatives`` maps raw answers to log probabilities
    when the upstream gives top alternatives; ``hedged`` says whether the reasoning chunk
    that ended at this boundary hedged, ``cue`` whether it changed course (see
    :func:`has_cue`); ``repetition`` is :func:`repetition` of the reasoning so far. The
    probe's cost: ``probe_tokens`` generated, ``probe_prompt_tokens`` read, of which
    ``probe_cached_tokens`` came from a prefix cache (cheap or free, by provider).
    """

    tokens: int
    answer: str | None
    logprob: float | None = None
    alternatives: Mapping[str, float] | None = None
    probe_tokens: int = 0
    hedged: bool = False
    probe_prompt_tokens: int = 0
    probe_cached_tokens: int = 0
    cue: bool = False
    repetition: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The step of a ``thinkstop.trace/1`` line (a recorded step *is* what the
        policy saw: :class:`thinkstop.scheduler.trace.Step` is this class)."""
        out: dict[str, Any] = {
            "tokens": self.tokens,
            "answer": self.answer,
            "logprob": self.logprob,
            "alternatives": dict(self.alternatives) if self.alternatives else None,
            "probe_tokens": self.probe_tokens,
        }
        if self.hedged:
            out["hedged"] = True
        if self.probe_prompt_tokens:
            out["probe_prompt_tokens"] = self.probe_prompt_tokens
            out["probe_cached_tokens"] = self.probe_cached_tokens
        if self.cue:
            out["cue"] = True
        if self.repetition is not None:
            out["repetition"] = round(self.repetition, 4)
        return out


@dataclass(frozen=True, slots=True)
class Signals:
    """Numbers a policy may use; also reported to clients in the decision."""

    tokens: int
    answer: str | None
    confidence: float
    change: float
    agreement: float
    streak: int
    hedged: bool
    probes: int
    distribution: dict[str, float] = field(default_factory=dict)
    cue: bool = False
    repetition: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "tokens": self.tokens,
            "answer": self.answer,
            "confidence": round(self.confidence, 6),
            "change": round(self.change, 6),
            "agreement": round(self.agreement, 6),
            "streak": self.streak,
            "hedged": self.hedged,
            "probes": self.probes,
        }


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence in bits, in [0, 1]."""
    keys = set(p) | set(q)
    total = 0.0
    for k in keys:
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        m = 0.5 * (a + b)
        if a > 0:
            total += 0.5 * a * math.log2(a / m)
        if b > 0:
            total += 0.5 * b * math.log2(b / m)
    return min(1.0, max(0.0, total))


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total variation distance, in [0, 1]."""
    keys = set(p) | set(q)
    return min(1.0, 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def with_answer(
    alternatives: Mapping[str, float], answer: str | None, logprob: float | None
) -> dict[str, float]:
    """The alternatives plus the chosen answer at its own log probability.

    Upstreams differ: some list the chosen answer among the alternatives, others (top
    tokens other than the one sampled) leave it out. Adding it back when it is missing
    keeps the distribution, and so the change between boundaries, about answers.
    """
    merged = dict(alternatives)
    key = normalize_answer(answer)
    if (
        key is not None
        and logprob is not None
        and all(normalize_answer(raw) != key for raw in merged)
    ):
        merged[answer or key] = logprob
    return merged


def normalise_alternatives(alternatives: Mapping[str, float]) -> dict[str, float]:
    """Merge raw alternatives by answer key and turn log probabilities into probabilities.

    Mass the alternatives do not cover goes to ``__other__``; a set that sums above one
    (never the case for real logprobs) is rescaled.
    """
    merged: dict[str, float] = {}
    for raw, logprob in alternatives.items():
        key = normalize_answer(raw) or NONE
        merged[key] = merged.get(key, 0.0) + math.exp(min(0.0, logprob))
    mass = sum(merged.values())
    if mass > 1.0:
        return {k: v / mass for k, v in merged.items()}
    if mass < 1.0:
        merged[OTHER] = merged.get(OTHER, 0.0) + (1.0 - mass)
    return merged


class SignalTracker:
    """Turns the sequence of observations of one request into :class:`Signals`.

    ``window`` is the number of recent probes used for agreement (and for the answer
    distribution when no logprobs are given); ``metric`` picks Jensen-Shannon ("js") or
    total variation ("tv") for the change between boundaries.
    """

    def __init__(self, window: int = 3, metric: str = "js") -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if metric not in {"js", "tv"}:
            raise ValueError("metric must be 'js' or 'tv'")
        self.window = window
        self.metric = metric
        self._recent: deque[str] = deque(maxlen=window)
        self._previous: dict[str, float] | None = None
        self._last_answer: str | None = None
        self._streak = 0
        self._probes = 0

    def update(self, obs: Observation) -> Signals:
        answer = normalize_answer(obs.answer)
        self._probes += 1
        self._recent.append(answer if answer is not None else NONE)
        if answer is not None and answer == self._last_answer:
            self._streak += 1
        else:
            self._streak = 1 if answer is not None else 0
        self._last_answer = answer

        agreement = (
            sum(1 for a in self._recent if a == answer) / self.window if answer is not None else 0.0
        )
        if obs.alternatives:
            distribution = normalise_alternatives(
                with_answer(obs.alternatives, obs.answer, obs.logprob)
            )
        elif obs.logprob is not None and answer is not None:
            p = math.exp(min(0.0, obs.logprob))
            distribution = {answer: p, OTHER: 1.0 - p}
        else:
            counts: dict[str, float] = {}
            for a in self._recent:
                counts[a] = counts.get(a, 0.0) + 1.0
            n = float(len(self._recent))
            distribution = {k: v / n for k, v in counts.items()}

        if answer is None:
            confidence = 0.0
        elif obs.logprob is not None:
            confidence = math.exp(min(0.0, obs.logprob))
        elif obs.alternatives:
            confidence = distribution.get(answer, 0.0)
        else:
            confidence = agreement

        if self._previous is None:
            change = 1.0
        elif self.metric == "js":
            change = js_divergence(distribution, self._previous)
        else:
            change = total_variation(distribution, self._previous)
        self._previous = distribution
        return Signals(
            tokens=obs.tokens,
            answer=answer,
            confidence=confidence,
            change=change,
            agreement=agreement,
            streak=self._streak,
            hedged=obs.hedged,
            probes=self._probes,
            distribution=distribution,
            cue=obs.cue,
            repetition=obs.repetition or 0.0,
        )
