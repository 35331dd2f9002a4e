"""Token sampling from next-token logits (numpy; no llama.cpp needed).

The engine reads only the last position's logits after each evaluation, so sampling and
log probabilities are computed here, from that one row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

Logits = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling settings; ``temperature <= 0`` means greedy."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 40
    seed: int | None = None

    def with_params(self, params: Mapping[str, Any]) -> Sampling:
        """These defaults overridden by the OpenAI fields a client sent."""
        changes: dict[str, Any] = {}
        if params.get("temperature") is not None:
            changes["temperature"] = float(params["temperature"])
        if params.get("top_p") is not None:
            changes["top_p"] = float(params["top_p"])
        if params.get("seed") is not None:
            changes["seed"] = int(params["seed"])
        return replace(self, **changes)


def log_softmax(logits: Logits) -> npt.NDArray[np.float64]:
    """Natural-log probabilities of every token, computed in float64."""
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return shifted - float(np.log(np.sum(np.exp(shifted))))


class Sampler:
    """Draws tokens under one :class:`Sampling`, with its own seeded generator."""

    def __init__(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self._rng = np.random.default_rng(sampling.seed)

    def __call__(self, logits: Logits) -> int:
        s = self.sampling
        if s.temperature <= 0:
            return int(np.argmax(logits))
        k = min(max(s.top_k, 1), logits.shape[0])
        top = np.argpartition(logits, -k)[-k:]
        top = top[np.argsort(logits[top])[::-1]]
        scaled = logits[top].astype(np.float64) / s.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if s.top_p < 1.0:
            # Keep the smallest head whose mass reaches top_p (always at least one token).
            keep = int(np.searchsorted(np.cumsum(probs), s.top_p) + 1)
            probs = probs[:keep] / probs[:keep].sum()
            top = top[:keep]
        return int(top[self._rng.choice(len(top), p=probs)])
