"""Where to probe: probe schedules, by spec, for the live loop and for replay alike.

A probe costs tokens and time, and on a token-billed API without prompt caching it
re-sends the prompt and all the reasoning so far, so probing every chunk grows
quadratically with the length of the reasoning. A schedule decides, at each point where
it could probe, whether to:

- ``fixed:every=N``: every N reasoning tokens (the default, N = the run's chunk_tokens);
- ``geometric:first=N,factor=F,max_gap=M``: the gaps grow by F from N up to M, for
  reasoning that settles early or never;
- ``transitions:min_gap=N,max_gap=M``: where the model changes course ("Wait",
  "Alternatively", "let me double-check": :func:`thinkstop.scheduler.signals.has_cue`),
  at least N tokens after the last probe, and at the latest M tokens after it (DEER,
  Yang et al. 2025, probes at "Wait" points).

The live loop asks a schedule at every chunk boundary it streams; replay asks it at
every recorded step of a trace recorded with dense probes (:func:`select`), so schedules
compare by replay on one recording.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from thinkstop.scheduler.registry import PolicySpecError, split_spec
from thinkstop.scheduler.trace import Trace

SCHEDULES: Final = ("fixed", "geometric", "transitions")


class Schedule:
    """Decides, boundary by boundary, whether a probe is due. Stateful: one per run."""

    name = "fixed"
    reads_cues = False  # whether ``due`` looks at ``cue`` (the live loop skips the scan)

    def due(self, tokens: int, cue: bool) -> bool:  # pragma: no cover - abstract
        """Whether to probe at ``tokens`` streamed reasoning tokens (``cue``: the text
        since the last boundary changed course). A True answer counts as a probe taken."""
        raise NotImplementedError

    def spec(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def first_due(self) -> int:  # pragma: no cover - abstract
        """Reasoning tokens before which no probe is ever due (the first possible one)."""
        raise NotImplementedError


@dataclass
class Fixed(Schedule):
    every: int = 64
    _next: int = 0

    name = "fixed"

    def __post_init__(self) -> None:
        if self.every <= 0:
            raise PolicySpecError("fixed: every must be > 0")
        self._next = self.every

    def due(self, tokens: int, cue: bool) -> bool:
        if tokens < self._next:
            return False
        self._next = (tokens // self.every + 1) * self.every
        return True

    def spec(self) -> str:
        return f"fixed:every={self.every}"

    @property
    def first_due(self) -> int:
        return self.every


@dataclass
class Geometric(Schedule):
    first: int = 32
    factor: float = 1.5
    max_gap: int = 512
    _next: float = 0.0
    _gap: float = 0.0

    name = "geometric"

    def __post_init__(self) -> None:
        if self.first <= 0 or self.max_gap < self.first or self.factor < 1.0:
            raise PolicySpecError("geometric: need first > 0, factor >= 1, max_gap >= first")
        self._next, self._gap = float(self.first), float(self.first)

    def due(self, tokens: int, cue: bool) -> bool:
        if tokens < self._next:
            return False
        self._gap = min(float(self.max_gap), self._gap * self.factor)
        self._next = tokens + self._gap
        return True

    def spec(self) -> str:
        return f"geometric:first={self.first},factor={self.factor},max_gap={self.max_gap}"

    @property
    def first_due(self) -> int:
        return self.first


@dataclass
class Transitions(Schedule):
    min_gap: int = 32
    max_gap: int = 256
    _last: int = 0

    name = "transitions"
    reads_cues = True

    def __post_init__(self) -> None:
        if self.min_gap <= 0 or self.max_gap < self.min_gap:
            raise PolicySpecError("transitions: need 0 < min_gap <= max_gap")

    def due(self, tokens: int, cue: bool) -> bool:
        since = tokens - self._last
        if since >= self.max_gap or (cue and since >= self.min_gap):
            self._last = tokens
            return True
        return False

    def spec(self) -> str:
        return f"transitions:min_gap={self.min_gap},max_gap={self.max_gap}"

    @property
    def first_due(self) -> int:
        return self.min_gap


Converter = type[int] | type[float]
_PARAMS: Final[dict[str, tuple[dict[str, Converter], type[Schedule]]]] = {
    "fixed": ({"every": int}, Fixed),
    "geometric": ({"first": int, "factor": float, "max_gap": int}, Geometric),
    "transitions": ({"min_gap": int, "max_gap": int}, Transitions),
}


def create_schedule(spec: str | None, chunk_tokens: int = 64) -> Schedule:
    """A schedule from ``name:key=value,...``; None or ``fixed`` without ``every`` probe
    every ``chunk_tokens``. Errors name the valid schedules or parameters."""
    name, pairs = split_spec(spec or "fixed")
    if name not in _PARAMS:
        raise PolicySpecError(
            f"unknown probe schedule {name!r}; valid schedules: {', '.join(SCHEDULES)}")
    types, cls = _PARAMS[name]
    values: dict[str, object] = {"every": chunk_tokens} if name == "fixed" else {}
    for key, raw in pairs:
        if key not in types:
            raise PolicySpecError(f"{name}: unknown parameter {key!r}; valid "
                                  f"parameters: {', '.join(types)}")
        try:
            values[key] = types[key](raw)
        except ValueError:
            raise PolicySpecError(f"{name}: {key}={raw!r} is not a valid "
                                  f"{types[key].__name__}") from None
    schedule: Schedule = cls(**values)
    return schedule


def select(trace: Trace, schedule: Schedule) -> Trace:
    """``trace`` with only the steps ``schedule`` would have probed at: what a live run
    under that schedule would have observed (the trace must be recorded with probes at
    least as dense as the schedule)."""
    kept = []
    cue = False  # a course change anywhere since the last probe counts, as it does live
    for step in trace.steps:
        cue = cue or step.cue
        if schedule.due(step.tokens, cue):
            kept.append(step)
            cue = False
    return replace(trace, steps=tuple(kept))
