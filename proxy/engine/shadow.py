"""Shadow mode: what a halting run would have done, as a trace line and as numbers.

In shadow mode the proxy probes at every boundary as usual and the policy decides, but
nothing halts: the client gets exactly what the model alone writes (the ``max_tokens``
cut still holds). Each shadowed request becomes one ``thinkstop.trace/1`` line, with
``expected: null`` (production traffic is unlabelled) and, in ``meta``, where the policy
would have halted and what that would have changed. ``thinkstop tune`` fits a policy to
such traces (the ``agreement`` objective: the same answer as the model alone, for fewer
tokens).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from thinkstop.proxy.engine.run import HaltingRun
from thinkstop.scheduler import Natural, Trace, answers_match, extract_answer


def chosen_for_shadow(setting: bool | float | None, draw: float | None = None) -> bool:
    """Whether a request is shadowed: ``True``, or a share of requests (0 to 1)."""
    if setting is None or setting is False:
        return False
    if setting is True:
        return True
    return (random.random() if draw is None else draw) < float(setting)


@dataclass(frozen=True, slots=True)
class WouldHave:
    """What halting would have done to one shadowed request."""

    halted: bool
    tokens: int | None = None  # reasoning tokens at the would-be halt
    reason: str | None = None
    saved_tokens: int = 0  # reasoning not written, net of the probes' generated tokens
    changed_answer: bool = False  # the answer at the halt differs from the model's own


def natural_answer(content: str) -> str | None:
    """The answer in what the model wrote by itself (a shadowed run's content)."""
    return extract_answer(content, whole_text_fallback=True)


def would_have(run: HaltingRun, answer: str | None) -> WouldHave:
    """Compare the policy's first would-be halt with the run as it went."""
    if run.shadow_halt is None:
        return WouldHave(halted=False)
    tokens, reason = run.shadow_halt
    at = next((o for o in run.observations if o.tokens == tokens), None)
    halted_answer = at.answer if at is not None else None
    probes_before = sum(o.probe_tokens for o in run.observations if o.tokens <= tokens)
    saved = run.result.reasoning_tokens - tokens - probes_before
    changed = not answers_match(halted_answer, answer) if answer is not None else (
        halted_answer is not None)
    return WouldHave(halted=True, tokens=tokens, reason=reason, saved_tokens=saved,
                     changed_answer=changed)


def shadow_trace(run: HaltingRun, answer: str | None, would: WouldHave, *, request_id: str,
                 model: str, started: float, prompt: list[dict[str, Any]] | None = None
                 ) -> Trace:
    """The trace line of one shadowed request: ``answer`` is the model's own
    (:func:`natural_answer`), ``would`` is :func:`would_have` of it; ``prompt``: the
    messages, only when the operator asked for prompt text in traces."""
    meta: dict[str, Any] = {
        "model": model,
        "policy": run.result.policy,
        "shadow": True,
        "would_halt": None if not would.halted else {
            "tokens": would.tokens, "reason": would.reason,
            "saved_tokens": would.saved_tokens, "changed_answer": would.changed_answer},
        "started_at": _iso(started),
        "finished_at": _iso(time.time()),
        "finish_reason": run.result.finish_reason,
        "natural_capped": run.result.halted and run.result.reason in ("max_tokens",
                                                                       "budget_cap"),
    }
    if prompt is not None:
        meta["messages"] = prompt
    steps = tuple(sorted(run.observations, key=lambda o: o.tokens))
    return Trace(id=request_id, task=model, expected=None,
                 chunk_tokens=run.options.chunk_tokens,
                 steps=tuple(s for s in steps if s.tokens <= run.result.reasoning_tokens),
                 natural=Natural(tokens=run.result.reasoning_tokens, answer=answer),
                 meta=meta)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
