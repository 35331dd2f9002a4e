"""A scripted, character-level stand-in for :class:`LocalEngine`, so the turn logic
(splitting, counting, forced close, banned end tokens, pre-emption, cache accounting) is
tested without a model. It follows the real engine's contract: one token per character,
token 0 ends the turn, and a call evaluates the tokens past its longest common prefix with
what the previous call left in the cache (at least one, to get fresh logits)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from thinkstop.proxy.upstreams.local.engine import (
    Candidate,
    Completion,
    EvalStats,
    LocalEngine,
    OnTokens,
    Sampling,
    Speed,
    Token,
)

EOG = 0


@dataclass
class Call:
    tokens: list[int]
    max_tokens: int
    ban: tuple[int, ...]
    result: Completion | None = None


@dataclass
class FakeEngine:
    """``script`` is what the model writes, across calls ("\\0" ends its turn; a banned
    end token is skipped, as if the model wrote its next choice instead)."""

    script: str = ""
    n_ctx: int = 10_000
    logprob: float = -0.5
    top: tuple[Candidate, ...] = ()
    stats: EvalStats = field(default_factory=EvalStats)
    speed: Speed = field(default_factory=Speed)
    eog_ids: frozenset[int] = frozenset({EOG})
    held: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, tokens: Sequence[int], *, max_tokens: int, sampling: Sampling,
                 on_tokens: OnTokens, should_stop: Callable[[], bool] | None = None,
                 top_n: int = 1, ban: Sequence[int] = (), offset: int = 0) -> Completion:
        call = Call(list(tokens), max_tokens, tuple(ban))
        self.calls.append(call)
        common = 0
        while common < min(len(tokens), len(self.held)) and tokens[common] == self.held[common]:
            common += 1
        common = min(common, len(tokens) - 1)
        done = Completion(evaluated=len(tokens) - common, reused=common)
        call.result = done
        self.stats.calls += 1
        self.stats.evaluated += done.evaluated
        self.stats.reused += done.reused
        self.held = list(tokens)
        stop = should_stop or (lambda: False)
        if stop():
            done.finish = "stopped"
            return done
        while done.generated < max_tokens:
            if not self.script:
                done.finish = "stop"
                return done
            char = self.script[0]
            self.script = self.script[1:]
            if char == "\0":
                if EOG in ban:
                    continue
                done.finish = "stop"
                return done
            token = Token(ord(char), char.encode("utf-8"), self.logprob, self.top)
            self.held.append(token.id)
            done.generated += 1
            if on_tokens([token], char) or stop():
                done.finish = "stopped"
                return done
        done.finish = "length"
        return done


def as_engine(fake: FakeEngine) -> LocalEngine:
    return cast(LocalEngine, fake)


def candidates(**logprobs: float) -> tuple[Candidate, ...]:
    """Top candidates by character (``end`` is the end-of-turn token)."""
    return tuple(Candidate(EOG if k == "end" else ord(k), "" if k == "end" else k, v)
                 for k, v in logprobs.items())



