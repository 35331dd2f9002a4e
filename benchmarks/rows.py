"""Rows of ``items.jsonl``: one per item x regime (x sample), scored by the task's scorer.

Regimes: ``requested`` (setting = budget), ``truncate`` (setting = budget, replayed),
``natural`` (setting "", sample k), ``policy`` (setting = spec, replayed) and ``live``
(setting = spec, run through the halting loop). Truncation budgets and policies are scored
by replay of the item's recorded trace with :mod:`thinkstop.scheduler.sweep`, at no model cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thinkstop.benchmarks.tasks import family
from thinkstop.benchmarks.tasks.base import Item, score_item
from thinkstop.scheduler.answers import parse_number
from thinkstop.scheduler.sweep import BatchOutcome, TraceBatch, evaluate
from thinkstop.scheduler.trace import Trace


def row_key(item_id: str, regime: str, setting: str, sample: int = 0) -> str:
    return f"{item_id}|{regime}|{setting}|{sample}"


def make_row(
    item: Item,
    regime: str,
    setting: str,
    *,
    answer: str | None,
    reasoning_tokens: int,
    probe_tokens: int = 0,
    sample: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A scored row; never raises on odd answers (they score as wrong)."""
    score = score_item(item, answer)
    row: dict[str, Any] = {
        "key": row_key(item.id, regime, setting, sample),
        "id": item.id,
        "task": item.task,
        "family": family(item.task),
        "level": item.level,
        "regime": regime,
        "setting": setting,
        "sample": sample,
        "expected": item.expected,
        "answer": answer,
        "parsed": score.parsed,
        "correct": score.correct,
        "score": score.value,
        "reasoning_tokens": reasoning_tokens,
        "probe_tokens": probe_tokens,
    }
    if item.kind == "regression":
        prediction = parse_number(answer) if answer is not None else None
        row["prediction"] = prediction if score.parsed is not None else None
        row["abs_error"] = score.abs_error
        row["features"] = item.meta.get("features")
    if "direction" in item.meta:
        row["direction"] = item.meta["direction"]
    if extra:
        row.update(extra)
    return row


def outcome_answers(batch: TraceBatch, outcome: BatchOutcome) -> list[str | None]:
    """The answer each replayed run ends with (the outcome gives tokens, not answers).

    A run that did not halt ended naturally; a halted run stopped at the step with its
    token count (steps ascend, so that step is unique), or before any step (no answer).
    """
    answers: list[str | None] = []
    for trace, tokens, halted in zip(batch.traces, outcome.tokens, outcome.halted, strict=True):
        if not halted:
            answers.append(trace.natural.answer)
            continue
        step = next((s for s in trace.steps if s.tokens == int(tokens)), None)
        answers.append(step.answer if step else None)
    return answers


def natural_row(item: Item, trace: Trace) -> dict[str, Any]:
    capped = bool((trace.meta or {}).get("natural_capped", False))
    return make_row(
        item,
        "natural",
        "",
        answer=trace.natural.answer,
        reasoning_tokens=trace.natural.tokens,
        sample=0,
        extra={"capped": capped},
    )


def replay_rows(
    items: dict[str, Item],
    traces: Sequence[Trace],
    budgets: Sequence[int],
    policies: Sequence[str],
    skip: set[str] | frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Truncation and policy rows for ``traces`` (keys in ``skip`` are left out)."""
    usable = [t for t in traces if t.id in items]
    if not usable:
        return []
    full = TraceBatch(usable)
    # Policies see the boundaries the live loop probes at (chunk, 2 chunk, ...); the probe
    # before any reasoning serves truncation budget 0 only.
    live_like = TraceBatch([t.as_live() for t in usable])
    specs = [("truncate", str(b), f"fixed:budget={b}", full) for b in budgets]
    specs += [("policy", p, p, live_like) for p in policies]
    rows: list[dict[str, Any]] = []
    for regime, setting, spec, batch in specs:
        if all(row_key(t.id, regime, setting) in skip for t in usable):
            continue
        outcome = evaluate(batch, spec)
        answers = outcome_answers(batch, outcome)
        for i, trace in enumerate(usable):
            if row_key(trace.id, regime, setting) in skip:
                continue
            rows.append(
                make_row(
                    items[trace.id],
                    regime,
                    setting,
                    answer=answers[i],
                    reasoning_tokens=int(outcome.tokens[i]),
                    probe_tokens=int(outcome.probe_tokens[i]),
                    extra={"halted": bool(outcome.halted[i])},
                )
            )
    return rows
