"""A character-level stand-in for :class:`LocalEngine` and a scripted sampler, so the
turn logic (splitting, counting, forcing, KV accounting) is tested without a model."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from proxy.local.engine import EvalStats, GenerationStopped, LocalEngine

EOG = 0


class FakeEngine:
    """One token per character; token 0 ends the turn. Tracks held tokens like the real
    engine (common-prefix reuse), so evaluation counts can be asserted."""

    def __init__(self, n_ctx: int = 10_000) -> None:
        self.n_ctx = n_ctx
        self.stats = EvalStats()
        self.held: list[int] = []

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def piece(self, token: int) -> bytes:
        return chr(token).encode("utf-8")

    def is_eog(self, token: int) -> bool:
        return token == EOG

    def evaluate(
        self, tokens: Sequence[int], should_stop: Callable[[], bool] | None = None
    ) -> np.ndarray:
        if should_stop is not None and should_stop():
            raise GenerationStopped
        common = 0
        while common < min(len(tokens), len(self.held)) and tokens[common] == self.held[common]:
            common += 1
        common = min(common, len(tokens) - 1)
        self.stats.evaluated += len(tokens) - common
        self.held = list(tokens)
        return np.zeros(300, dtype=np.float32)


def as_engine(fake: FakeEngine) -> LocalEngine:
    return cast(LocalEngine, fake)


def script(text: str) -> Callable[[Any], int]:
    """A sampler that writes ``text`` ("\\0" ends the turn), ignoring the logits."""
    chars: Iterator[str] = iter(text)
    return lambda _logits: ord(next(chars))
