"""``learned``: a halting policy fitted to a model's own traces (by ``thinkstop tune``).

A logistic model of "the answer the probe gives now is the one that counts" (the
model's own final answer for unlabelled traffic, the correct one for labelled traces),
from per-boundary features the signal tracker already computes: confidence, change,
agreement, streak, hedging, course changes, repetition and position. The policy halts
when the predicted probability reaches ``threshold`` (chosen by ``tune`` for the
objective). What it assumes: the traces it was fitted on come from the same model,
prompts and probe wording as the traffic it runs on, and the boundaries are at similar
spacing; a model that answers early and stably is where it pays. The weights live in a
small JSON file named by the spec (``learned:weights=PATH``); the live path only
multiplies eight numbers. The scheduler reads no files: the proxy and the CLIs install a
loader (:func:`use_loader`) that reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from thinkstop.scheduler.policy import Policy
from thinkstop.scheduler.signals import Signals

FORMAT: Final = "thinkstop.learned/1"
FEATURES: Final = ("confidence", "change", "agreement", "streak", "hedged", "position",
                   "cue", "repetition")
STREAK_CAP: Final = 8
POSITION_SCALE: Final = 8.0  # log1p(tokens) / 8: about 1 at 3,000 tokens


def feature_row(signals: Signals) -> list[float]:
    """The features of one boundary, in ``FEATURES`` order."""
    return [signals.confidence, signals.change, signals.agreement,
            min(signals.streak, STREAK_CAP) / STREAK_CAP, float(signals.hedged),
            math.log1p(signals.tokens) / POSITION_SCALE, float(signals.cue),
            signals.repetition]


@dataclass(frozen=True, slots=True)
class LogisticModel:
    weights: tuple[float, ...]
    bias: float
    window: int = 2
    threshold: float = 0.8

    def probability(self, row: Sequence[float]) -> float:
        z = self.bias + math.fsum(w * x for w, x in zip(self.weights, row, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_json(self, **about: Any) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(FEATURES), "weights": list(self.weights),
                "bias": self.bias, "window": self.window, "threshold": self.threshold,
                **about}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogisticModel:
        if data.get("format") != FORMAT or list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"not {FORMAT} weights for features {', '.join(FEATURES)}")
        weights = tuple(float(w) for w in data["weights"])
        return cls(weights=weights, bias=float(data["bias"]), window=int(data["window"]),
                   threshold=float(data["threshold"]))


def fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], *, l2: float = 1.0,
        iterations: int = 30, window: int = 2) -> LogisticModel:
    """L2-regularised logistic regression by Newton's method (a few dozen features and
    rows by the hundred thousand: a few milliseconds per iteration)."""
    n, k = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    target = y.astype(np.float64)
    beta = np.zeros(k + 1)
    penalty = np.full(k + 1, l2)
    penalty[0] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        z = np.clip(design @ beta, -60.0, 60.0)
        p = 1.0 / (1.0 + np.exp(-z))
        gradient = design.T @ (target - p) - penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(k + 1), gradient)
        beta += step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return LogisticModel(weights=tuple(float(v) for v in beta[1:]), bias=float(beta[0]),
                         window=window)


WeightsLoader = Callable[[str], Mapping[str, Any]]
_LOADER: list[WeightsLoader] = []


def use_loader(loader: WeightsLoader) -> None:
    """How ``weights=PATH`` is read (installed by the I/O layers: the proxy, the CLIs)."""
    _LOADER[:] = [loader]


def load_model(weights: str) -> LogisticModel:
    if not weights:
        raise ValueError("learned: weights=PATH is required (a file written by thinkstop tune)")
    if not _LOADER:
        raise ValueError("learned: no weights loader is installed (the scheduler reads no "
                         "files; the proxy and the CLIs install one)")
    try:
        return LogisticModel.from_json(_LOADER[0](weights))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"learned: cannot use weights {weights!r}: {exc}") from None


class LearnedPolicy(Policy):
    """Halt once the fitted model says the current answer is the one that counts."""

    name: ClassVar[str] = "learned"

    def __init__(self, weights: str = "", threshold: float = -1.0) -> None:
        model = load_model(weights)
        if threshold != -1.0 and not 0.0 < threshold < 1.0:
            raise ValueError("learned: threshold must be in (0, 1)")
        super().__init__(window=model.window)
        self.weights_path = weights
        self.model = model
        self.threshold = model.threshold if threshold == -1.0 else threshold

    @classmethod
    def from_model(cls, model: LogisticModel, threshold: float | None = None,
                   weights: str = "<fitted>") -> LearnedPolicy:
        """A policy from a model in memory (``tune`` evaluates them before any file)."""
        policy = cls.__new__(cls)
        Policy.__init__(policy, window=model.window)
        policy.weights_path = weights
        policy.model = model
        policy.threshold = model.threshold if threshold is None else threshold
        return policy

    def params(self) -> dict[str, object]:
        return {"weights": self.weights_path, "threshold": self.threshold}

    def decide(self, signals: Signals) -> tuple[bool, str]:
        if signals.answer is None:
            return False, "no_answer"
        if self.model.probability(feature_row(signals)) >= self.threshold:
            return True, "learned"
        return False, "not_yet"
