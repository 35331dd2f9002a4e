"""The ``thinkstop.trace/1`` record: what a probe answered at every chunk boundary of one run.

Parsing is pure (text in, dataclasses out); callers open the files. Every problem is
reported with its line number, and nothing is skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from thinkstop.scheduler.signals import Observation

TRACE_FORMAT = "thinkstop.trace/1"


class TraceError(ValueError):
    """A trace line is malformed; the message names the line."""


# One recorded step is the observation a policy saw at that boundary: the same class,
# so recording and replaying convert nothing.
Step = Observation


@dataclass(frozen=True, slots=True)
class Natural:
    tokens: int
    answer: str | None


@dataclass(frozen=True, slots=True)
class Trace:
    id: str
    task: str
    expected: str | None
    chunk_tokens: int
    steps: tuple[Step, ...]
    natural: Natural
    meta: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": TRACE_FORMAT,
            "id": self.id,
            "task": self.task,
            "expected": self.expected,
            "chunk_tokens": self.chunk_tokens,
            "steps": [s.to_json() for s in self.steps],
            "natural": {"tokens": self.natural.tokens, "answer": self.natural.answer},
        }
        if self.meta:
            out["meta"] = self.meta
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    def as_live(self) -> Trace:
        """The trace as the live loop probes it: without the probe taken before any
        reasoning (recorded for truncation budget 0; the proxy never probes at 0).
        Policies replay on this view, fixed budgets on the whole trace."""
        if not self.steps or self.steps[0].tokens > 0:
            return self
        return replace(self, steps=tuple(s for s in self.steps if s.tokens > 0))


def _fail(line: int, message: str) -> TraceError:
    return TraceError(f"line {line}: {message}")


def _int(value: Any, what: str, line: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(line, f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _opt_str(value: Any, what: str, line: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _fail(line, f"{what} must be a string or null, got {value!r}")
    return value


def _opt_float(value: Any, what: str, line: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(line, f"{what} must be a number or null, got {value!r}")
    return float(value)


def _step(raw: Any, index: int, line: int) -> Step:
    where = f"steps[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(line, f"{where} must be an object")
    if "tokens" not in raw:
        raise _fail(line, f"{where}.tokens is missing")
    alternatives = raw.get("alternatives")
    alts: dict[str, float] | None = None
    if alternatives is not None:
        if not isinstance(alternatives, Mapping):
            raise _fail(line, f"{where}.alternatives must be an object or null")
        alts = {}
        for k, v in alternatives.items():
            value = _opt_float(v, f"{where}.alternatives[{k!r}]", line)
            if value is None:
                raise _fail(line, f"{where}.alternatives[{k!r}] must be a number")
            alts[str(k)] = value
    return Step(
        tokens=_int(raw["tokens"], f"{where}.tokens", line),
        answer=_opt_str(raw.get("answer"), f"{where}.answer", line),
        logprob=_opt_float(raw.get("logprob"), f"{where}.logprob", line),
        alternatives=alts,
        probe_tokens=_int(raw.get("probe_tokens", 0), f"{where}.probe_tokens", line),
        hedged=bool(raw.get("hedged", False)),
        probe_prompt_tokens=_int(raw.get("probe_prompt_tokens", 0),
                                 f"{where}.probe_prompt_tokens", line),
        probe_cached_tokens=_int(raw.get("probe_cached_tokens", 0),
                                 f"{where}.probe_cached_tokens", line),
        cue=bool(raw.get("cue", False)),
        repetition=_opt_float(raw.get("repetition"), f"{where}.repetition", line),
    )


def parse_trace(text: str, line: int = 1) -> Trace:
    """Parse one JSON line into a :class:`Trace`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(line, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(raw, Mapping):
        raise _fail(line, "a trace must be a JSON object")
    fmt = raw.get("format")
    if fmt != TRACE_FORMAT:
        raise _fail(line, f"format must be {TRACE_FORMAT!r}, got {fmt!r}")
    for key in ("id", "steps", "natural"):
        if key not in raw:
            raise _fail(line, f"missing field {key!r}")
    steps_raw = raw["steps"]
    if not isinstance(steps_raw, list):
        raise _fail(line, "steps must be a list")
    steps = tuple(_step(s, i, line) for i, s in enumerate(steps_raw))
    for i in range(1, len(steps)):
        if steps[i].tokens <= steps[i - 1].tokens:
            raise _fail(line, f"steps must ascend in tokens (steps[{i}].tokens={steps[i].tokens})")
    natural_raw = raw["natural"]
    if not isinstance(natural_raw, Mapping) or "tokens" not in natural_raw:
        raise _fail(line, "natural must be an object with tokens and answer")
    natural = Natural(
        tokens=_int(natural_raw["tokens"], "natural.tokens", line),
        answer=_opt_str(natural_raw.get("answer"), "natural.answer", line),
    )
    if steps and steps[-1].tokens > natural.tokens:
        raise _fail(
            line,
            f"a step at {steps[-1].tokens} tokens lies past the natural end ({natural.tokens})",
        )
    meta = raw.get("meta")
    return Trace(
        id=str(raw["id"]),
        task=str(raw.get("task", "")),
        expected=_opt_str(raw.get("expected"), "expected", line),
        chunk_tokens=_int(raw.get("chunk_tokens", 0), "chunk_tokens", line),
        steps=steps,
        natural=natural,
        meta=dict(meta) if isinstance(meta, Mapping) else None,
    )


def parse_traces(lines: Iterable[str]) -> Iterator[Trace]:
    """Parse JSONL text line by line; blank lines are allowed, anything else must parse."""
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield parse_trace(text, number)
