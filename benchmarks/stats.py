"""Statistics of the report, as in the paper: means with 95% CIs, trend labels, length bins.

- :func:`mean_ci`: mean and 95% interval. Rates (every value 0 or 1) get the Wilson
  score interval, which stays inside [0, 1] and keeps its coverage at the small n these
  runs have (the paper's 1.96 x SE collapses to zero width at 0/n and n/n); other scores
  (errors) get Student's t interval.
- :func:`trend`: the paper's label for how a score moves from the least to the most
  reasoning: ``inverse`` (falls) or ``positive`` (rises) when it moves by more than the
  threshold (2 accuracy points, or 0.05 for error-type scores) with non-overlapping CIs;
  ``flat`` below the threshold; ``noisy`` above it with overlapping CIs.
- :func:`rank_bins`: the natural-overthinking view: within a group, sort each question's
  samples by reasoning length and average the k-th shortest across questions.
- :func:`sem`: the standard error of a mean (the paper's error bars on its error metric).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Trend = Literal["inverse", "positive", "flat", "noisy", "n/a"]

ACCURACY_THRESHOLD = 0.02
ERROR_THRESHOLD = 0.05


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean with its 95% interval [``low``, ``high``] (not always symmetric)."""

    n: int
    mean: float
    low: float
    high: float

    @property
    def ci(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": round(self.mean, 6), "ci95": round(self.ci, 6),
                "low": round(self.low, 6), "high": round(self.high, 6)}

    @classmethod
    def from_dict(cls, data: Mapping[str, float | int]) -> Estimate:
        mean, ci = float(data["mean"]), float(data["ci95"])
        return cls(int(data["n"]), mean, float(data.get("low", mean - ci)),
                   float(data.get("high", mean + ci)))


def mean_ci(values: Sequence[float] | npt.NDArray[np.float64], *,
            rate: bool | None = None) -> Estimate:
    """Mean and 95% interval: Wilson for 0/1 values, Student's t otherwise (module
    docstring); a single value has a zero-width interval unless it is a rate. Arrays are
    summarised without a Python loop (``tune`` summarises thousands of configurations).
    ``rate=False`` forces the t interval (paired differences of 0/1 scores are not a
    rate even when every one is 0 or 1)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan)
    mean = math.fsum(x.tolist()) / n
    is_rate = bool(np.all((x == 0.0) | (x == 1.0))) if rate is None else rate
    if is_rate:
        low, high = wilson(round(mean * n), n)
        return Estimate(n, mean, low, high)
    if n < 2:
        return Estimate(n, mean, mean, mean)
    var = float(np.sum((x - mean) ** 2)) / (n - 1)
    half = float(stats.t.ppf(0.975, n - 1)) * math.sqrt(var / n)
    return Estimate(n, mean, mean - half, mean + half)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` of ``n`` (95% by default)."""
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def trend(first: Estimate, last: Estimate, threshold: float = ACCURACY_THRESHOLD) -> Trend:
    """Label the move from ``first`` (least reasoning) to ``last`` (most reasoning).

    Scores are "higher is better" (error metrics are negated before they get here).
    """
    if first.n == 0 or last.n == 0 or math.isnan(first.mean) or math.isnan(last.mean):
        return "n/a"
    delta = last.mean - first.mean
    if abs(delta) <= threshold:
        return "flat"
    overlap = first.low <= last.high and last.low <= first.high
    if overlap:
        return "noisy"
    return "positive" if delta > 0 else "inverse"


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation; None when undefined (fewer than 3 pairs or no variance)."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if not (math.isnan(x) or math.isnan(y))]
    if len(pairs) < 3:
        return None
    mx = math.fsum(p[0] for p in pairs) / len(pairs)
    my = math.fsum(p[1] for p in pairs) / len(pairs)
    sxy = math.fsum((x - mx) * (y - my) for x, y in pairs)
    sxx = math.fsum((x - mx) ** 2 for x, _ in pairs)
    syy = math.fsum((y - my) ** 2 for _, y in pairs)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def rmse(errors: Sequence[float]) -> float:
    return math.sqrt(math.fsum(e * e for e in errors) / len(errors)) if errors else math.nan


def sem(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); NaN below 2."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1) / n)


@dataclass(frozen=True, slots=True)
class RankBin:
    rank: int  # 1 = the shortest sample of each question
    tokens: Estimate
    score: Estimate


def rank_bins(samples: Mapping[str, Sequence[tuple[int, float | None]]]) -> list[RankBin]:
    """Natural-overthinking bins from ``{question: [(reasoning_tokens, score), ...]}``.

    Only questions with the full number of samples (the most any question has) take part,
    so every bin averages the same questions. A sample without a score (an unparsed
    regression answer) is ranked by its length but left out of its bin's score.
    """
    if not samples:
        return []
    k = max(len(v) for v in samples.values())
    full = [sorted(v, key=lambda s: s[0]) for v in samples.values() if len(v) == k]
    bins: list[RankBin] = []
    for rank in range(k):
        bins.append(
            RankBin(
                rank=rank + 1,
                tokens=mean_ci([float(s[rank][0]) for s in full]),
                score=mean_ci([v for s in full if (v := s[rank][1]) is not None]),
            )
        )
    return bins
