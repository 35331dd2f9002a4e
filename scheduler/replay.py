"""Offline replay: what a policy would have done on a recorded trace, with no model calls.

Semantics (the README documents them for users):

- ``fixed:budget=B``: the natural answer and tokens when the model stopped by itself
  within B; otherwise the last step at or below B (its answer and tokens); with no such
  step, no answer, at B tokens. No probes are spent.
- any other policy observes the steps in order (within its guard-rails); a halt at step k
  gives step k's answer and tokens; never halting gives the natural answer and tokens, or,
  when ``max_tokens`` cuts the run first, the last step within it. Probe cost is the sum
  of ``probe_tokens`` over the steps observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from thinkstop.scheduler.answers import answers_match
from thinkstop.scheduler.policy import Guarded
from thinkstop.scheduler.registry import PolicySpec, create_policy
from thinkstop.scheduler.trace import Step, Trace


@dataclass(frozen=True, slots=True)
class Outcome:
    answer: str | None
    tokens: int
    probe_tokens: int
    probes: int
    halted: bool
    reason: str
    correct: bool


def _cut(trace: Trace, budget: int, probe_tokens: int, probes: int) -> Outcome:
    """The state of the run when reasoning is cut at ``budget`` tokens."""
    if trace.natural.tokens <= budget:
        answer, tokens = trace.natural.answer, trace.natural.tokens
        halted, reason = False, "natural"
    else:
        last: Step | None = None
        for step in trace.steps:
            if step.tokens > budget:
                break
            last = step
        answer = last.answer if last else None
        tokens = last.tokens if last else budget
        halted, reason = True, "max_tokens"
    return Outcome(
        answer=answer,
        tokens=tokens,
        probe_tokens=probe_tokens,
        probes=probes,
        halted=halted,
        reason=reason,
        correct=answers_match(answer, trace.expected),
    )


def replay_one(trace: Trace, policy: Guarded) -> Outcome:
    """Run one fresh guarded policy over one trace."""
    max_tokens = policy.max_tokens
    probe_tokens = 0
    if policy.needs_probes:
        for step in trace.steps:
            if not policy.wants_probe(step.tokens):
                break
            probe_tokens += step.probe_tokens
            decision = policy.observe(step)
            if decision.halt:
                return Outcome(
                    answer=step.answer,
                    tokens=step.tokens,
                    probe_tokens=probe_tokens,
                    probes=policy.probes,
                    halted=True,
                    reason=decision.reason,
                    correct=answers_match(step.answer, trace.expected),
                )
    budget = max_tokens if max_tokens is not None else trace.natural.tokens
    return _cut(trace, budget, probe_tokens, policy.probes)


def replay(traces: Sequence[Trace], spec: str | PolicySpec) -> list[Outcome]:
    """Replay ``spec`` over every trace (a fresh policy per trace)."""
    return [replay_one(trace, create_policy(spec)) for trace in traces]


def natural_outcomes(traces: Sequence[Trace]) -> list[Outcome]:
    """Where each run stops when left alone."""
    return [_cut(t, t.natural.tokens, 0, 0) for t in traces]
