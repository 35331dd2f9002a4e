"""Rows of ``items.jsonl``: one per item x regime x setting x sample x run, scored by the
task's scorer.

Regimes: ``requested`` (setting = budget), ``truncate`` (setting = budget, replayed),
``natural`` (setting "", sample k), ``policy`` (setting = spec, replayed) and ``live``
(setting = spec, run through the halting loop). Truncation budgets and policies are scored
by replay of the item's recorded traces with :mod:`thinkstop.scheduler.sweep`, at no model
cost. ``run`` numbers the independent runs of the controlled regimes (``--runs``): run r of
truncation and policies replays the item's r-th trace. Rows and traces written before runs
existed have no ``run`` and are run 0; run 0's key is the key they always had.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thinkstop.benchmarks.tasks import family
from thinkstop.benchmarks.tasks.base import Item, score_item
from thinkstop.scheduler.answers import parse_number
from thinkstop.scheduler.sweep import BatchOutcome, TraceBatch, evaluate
from thinkstop.scheduler.trace import Trace


def row_key(item_id: str, regime: str, setting: str, sample: int = 0, run: int = 0) -> str:
    """``id|regime|setting|sample``, plus ``|run`` for runs after the first."""
    key = f"{item_id}|{regime}|{setting}|{sample}"
    return f"{key}|{run}" if run else key


def run_of(record: Trace | dict[str, Any]) -> int:
    """The run a trace or a row belongs to (0 when it predates ``--runs``)."""
    if isinstance(record, Trace):
        return int((record.meta or {}).get("run", 0))
    return int(record.get("run", 0))


def with_run(row: dict[str, Any], run: int) -> dict[str, Any]:
    """``row`` as run ``run`` (for rows built by code that does not know runs)."""
    key = row_key(str(row["id"]), str(row["regime"]), str(row["setting"]),
                  int(row.get("sample", 0)), run)
    return {**row, "key": key, "run": run}


def make_row(
    item: Item,
    regime: str,
    setting: str,
    *,
    answer: str | None,
    reasoning_tokens: int,
    probe_tokens: int = 0,
    sample: int = 0,
    run: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A scored row; never raises on odd answers (they score as wrong, or as unparsed for
    regression: ``score`` None)."""
    score = score_item(item, answer)
    row: dict[str, Any] = {
        "key": row_key(item.id, regime, setting, sample, run),
        "id": item.id,
        "task": item.task,
        "family": family(item.task),
        "level": item.level,
        "regime": regime,
        "setting": setting,
        "sample": sample,
        "run": run,
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
    """The natural-thinking row of a trace: trace run r is natural sample r."""
    capped = bool((trace.meta or {}).get("natural_capped", False))
    return make_row(
        item,
        "natural",
        "",
        answer=trace.natural.answer,
        reasoning_tokens=trace.natural.tokens,
        sample=run_of(trace),
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
    runs = [run_of(t) for t in usable]
    rows: list[dict[str, Any]] = []
    for regime, setting, spec, batch in specs:
        keys = [row_key(t.id, regime, setting, 0, r) for t, r in zip(usable, runs, strict=True)]
        if all(k in skip for k in keys):
            continue
        outcome = evaluate(batch, spec)
        answers = outcome_answers(batch, outcome)
        for i, trace in enumerate(usable):
            if keys[i] in skip:
                continue
            rows.append(
                make_row(
                    items[trace.id],
                    regime,
                    setting,
                    answer=answers[i],
                    reasoning_tokens=int(outcome.tokens[i]),
                    probe_tokens=int(outcome.probe_tokens[i]),
                    run=runs[i],
                    extra={"halted": bool(outcome.halted[i])},
                )
            )
    return rows
