"""The benchmark runner: plan the calls, run them concurrently, write results as they land.

Work units, per item: one recorded trace per run (natural thinking, probed at every chunk
boundary; ``--runs`` of them when truncation or policies replay them), more natural runs
until there are ``samples``, one run per requested budget and run, and with ``--live`` one
live run per policy and run. Each finished unit is appended to ``traces.jsonl`` /
``items.jsonl`` at once (fsynced), so an interrupted run loses nothing it finished and a
re-run skips it. Failed units are retried with exponential backoff; units that still fail
are listed in ``errors.jsonl`` and retried by the next run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from thinkstop.benchmarks.anchoring import run_anchors
from thinkstop.benchmarks.config import BenchConfig, data_path, resume_conflicts
from thinkstop.benchmarks.recorder import generate, record_trace
from thinkstop.benchmarks.rows import (
    make_row,
    natural_row,
    replay_rows,
    row_key,
    run_of,
    with_run,
)
from thinkstop.benchmarks.store import JsonlStore
from thinkstop.benchmarks.tasks import Options, load_items
from thinkstop.benchmarks.tasks.base import Item
from thinkstop.scheduler.trace import Trace, parse_traces

if TYPE_CHECKING:
    from thinkstop.proxy.anchors import Anchors
    from thinkstop.proxy.upstreams.base import Upstream

Rows = list[dict[str, Any]]


class ResumeError(RuntimeError):
    """The output folder holds a run with different settings."""


@dataclass(frozen=True)
class Unit:
    item: Item
    regime: str  # trace | requested | natural | anchored | live
    setting: str = ""
    sample: int = 0
    run: int = 0

    @property
    def key(self) -> str:
        return row_key(self.item.id, self.regime, self.setting, self.sample, self.run)


@dataclass
class RunReport:
    planned: int
    skipped: int
    done: int
    failed: int


class Outputs:
    """The files of one run folder."""

    def __init__(self, out: Path) -> None:
        self.dir = out
        self.items = JsonlStore(out / "items.jsonl")
        self.traces = JsonlStore(out / "traces.jsonl")
        self.errors = JsonlStore(out / "errors.jsonl")
        self.config = out / "run.json"

    def load_traces(self) -> list[Trace]:
        """The recorded traces, one per (item, run): a line written twice (a crash between
        the trace and its rows, then a retry) counts once."""
        unique: dict[tuple[str, int], Trace] = {}
        for trace in parse_traces(json.dumps(r) for r in self.traces.load()):
            unique.setdefault((trace.id, run_of(trace)), trace)
        return list(unique.values())


def _options(config: BenchConfig) -> Options:
    return Options(
        data_dir=data_path(config.data_dir),
        grades_csv=data_path(config.grades_csv),
        items={task: Path(path) for task, path in config.items_files.items()},
    )


def load_all_items(config: BenchConfig) -> list[Item]:
    options = _options(config)
    items: list[Item] = []
    for task in config.tasks:
        items += load_items(task, config.n, config.seed, options)
    return items


def load_anchors(config: BenchConfig, items: Sequence[Item]) -> dict[str, Anchors]:
    """The anchored regime's examples per task (none when the regime is not run); raises
    :class:`~thinkstop.benchmarks.anchoring.AnchorsUnavailable` or the file's error."""
    if "anchored" not in config.regimes:
        return {}
    return run_anchors(config.tasks, items, path=config.anchors, count=config.anchors_max,
                       seed=config.seed, options=_options(config))


def plan(config: BenchConfig, items: Sequence[Item]) -> list[Unit]:
    runs, traces = range(config.runs), config.trace_runs
    units: list[Unit] = []
    for item in items:
        units += [Unit(item, "trace", run=r) for r in range(traces)]
        if "natural" in config.regimes:
            units += [Unit(item, "natural", "", k) for k in range(traces, config.samples)]
        if "requested" in config.regimes:
            units += [Unit(item, "requested", str(b), run=r) for b in config.budgets for r in runs]
        if "anchored" in config.regimes:
            units += [Unit(item, "anchored", "", k) for k in range(config.samples)]
        if config.live:
            units += [Unit(item, "live", p, run=r) for p in config.policies for r in runs]
    return units


def _check_resume(outputs: Outputs, config: BenchConfig) -> None:
    if outputs.config.exists():
        saved = json.loads(outputs.config.read_text(encoding="utf-8"))
        conflicts = resume_conflicts(saved, config)
        if conflicts:
            raise ResumeError(
                f"{outputs.dir} holds a run with other settings ({'; '.join(conflicts)}); "
                "use another --out folder, or pass the saved settings to resume it"
            )
    outputs.dir.mkdir(parents=True, exist_ok=True)
    outputs.config.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")


def derived_rows(
    config: BenchConfig, items: dict[str, Item], traces: Sequence[Trace], done: set[str]
) -> Rows:
    """Rows that follow from recorded traces: natural samples (trace run r is sample r,
    while r < the samples asked for), truncation and policies (per run)."""
    rows: Rows = [
        natural_row(items[t.id], t)
        for t in traces
        if t.id in items
        and run_of(t) < config.natural_samples
        and row_key(t.id, "natural", "", run_of(t)) not in done
    ]
    budgets = config.budgets if "truncate" in config.regimes else ()
    policies = config.policies if "policies" in config.regimes or config.live else ()
    rows += replay_rows(items, traces, budgets, policies, skip=done)
    return rows


async def _execute(
    unit: Unit,
    config: BenchConfig,
    upstream: Upstream,
    live: Callable[[Unit], Awaitable[dict[str, Any]]] | None,
    anchors: dict[str, Anchors],
) -> tuple[Trace | None, Rows]:
    item = unit.item
    settings = config.record
    if unit.regime == "trace":
        meta: dict[str, object] = {"level": item.level, "model": config.model, "run": unit.run}
        trace, _ = await record_trace(
            upstream,
            config.request(item, None),
            settings,
            item_id=item.id,
            task=item.task,
            expected=item.expected,
            meta=meta,
        )
        return trace, []
    if unit.regime == "live":
        if live is None:
            raise RuntimeError("live runs need the proxy's halting loop")
        return None, [with_run(await live(unit), unit.run)]
    budget = int(unit.setting) if unit.regime == "requested" else None
    examples = anchors[item.task] if unit.regime == "anchored" else None
    run = await generate(upstream, config.request(item, budget, examples), settings,
                         max_reasoning=config.reasoning_cap(budget))
    extra: dict[str, Any] = {
        "capped": run.capped,
        "answer_tokens": run.answer_tokens,
        "wall_s": round(run.wall_s, 3),
    }
    if examples is not None:
        extra["anchors"] = len(examples.examples)
    row = make_row(
        item,
        unit.regime,
        unit.setting,
        answer=run.answer,
        reasoning_tokens=run.reasoning_tokens,
        sample=unit.sample,
        run=unit.run,
        extra=extra,
    )
    return None, [row]


async def run_units(
    config: BenchConfig,
    upstream: Upstream,
    out: Path,
    *,
    progress: bool = True,
    live: Callable[[Unit], Awaitable[dict[str, Any]]] | None = None,
    items: Sequence[Item] | None = None,
    anchors: dict[str, Anchors] | None = None,
) -> RunReport:
    """Run (or resume) a benchmark into ``out``; returns what was done."""
    outputs = Outputs(out)
    _check_resume(outputs, config)
    all_items = list(items) if items is not None else load_all_items(config)
    if anchors is None:
        anchors = load_anchors(config, all_items)
    by_id = {i.id: i for i in all_items}
    done = {str(r.get("key")) for r in outputs.items.load()}
    traces = outputs.load_traces()
    traced = {(t.id, run_of(t)) for t in traces}
    # Rows a crash may have left unwritten after their trace was saved.
    backlog = derived_rows(config, by_id, traces, done)
    outputs.items.append(backlog)
    done |= {r["key"] for r in backlog}

    units = plan(config, all_items)
    pending = [
        u
        for u in units
        if not ((u.item.id, u.run) in traced if u.regime == "trace" else u.key in done)
    ]
    report = RunReport(planned=len(units), skipped=len(units) - len(pending), done=0, failed=0)
    if not pending:
        return report
    bar = _progress(len(pending), enabled=progress)
    semaphore = asyncio.Semaphore(config.concurrency)

    async def one(unit: Unit) -> None:
        async with semaphore:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(config.retries + 1),
                wait=wait_random_exponential(multiplier=config.backoff_s, max=120),
                retry=retry_if_exception_type(Exception),  # any provider's failure
                reraise=True,
            )
            error: BaseException | None = None
            try:
                async for attempt in retrying:
                    with attempt:
                        trace, rows = await _execute(unit, config, upstream, live, anchors)
            except Exception as exc:
                error = exc
            if error is not None:
                report.failed += 1
                outputs.errors.append(
                    {"key": unit.key, "error": f"{type(error).__name__}: {error}"}
                )
                bar.write(f"failed after {config.retries + 1} tries: {unit.key}: {error}")
                bar.update(1)
                return
            if trace is not None:
                outputs.traces.append_lines([trace.dumps()])
                rows = derived_rows(config, by_id, [trace], done)
            outputs.items.append(rows)
            done.update(r["key"] for r in rows)
            report.done += 1
            bar.update(1)

    try:
        await asyncio.gather(*(one(u) for u in pending))
    finally:
        bar.close()
    return report


class _NoBar:
    def update(self, n: int) -> None: ...
    def write(self, text: str) -> None:
        print(text, file=sys.stderr)

    def close(self) -> None: ...


def _progress(total: int, *, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="call", desc="bench", dynamic_ncols=True, smoothing=0.1)
