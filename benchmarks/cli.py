"""``thinkstop bench sample | run | report | gate``.

Heavy modules (litellm, the upstream adapters, matplotlib, tqdm) are imported only when a
subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from thinkstop.benchmarks.tasks import DEFAULT_N, DEFAULT_TASKS, FAMILIES

_TASK_HELP = f"task names: {', '.join(FAMILIES)}, ai_risk:<subset> (e.g. ai_risk:survival-instinct)"
_PAPER_BUDGETS = "0,1024,2048,4096,8192,16384"
_ITEMS_HELP = (
    "a JSONL file of the paper's released items for the task, run instead of its own "
    "generator or loader: one object a line, {\"prompt\", \"answer\"} or {\"prompt\", "
    "\"classes\", \"answer_index\"}, with the level in num_distractors, "
    "examples_per_prompt or grid_size"
)


def split_policies(values: list[str]) -> list[str]:
    """Policy specs from comma-separated lists whose specs may hold commas themselves.

    ``plateau:window=3,epsilon=0.05,consistency`` -> ``["plateau:window=3,epsilon=0.05",
    "consistency"]``: a piece with ``=`` but no ``:`` continues the previous spec.
    """
    specs: list[str] = []
    for value in values:
        for piece in (p.strip() for p in value.split(",")):
            if not piece:
                continue
            if specs and "=" in piece and ":" not in piece:
                specs[-1] = f"{specs[-1]},{piece}"
            else:
                specs.append(piece)
    return specs


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _tasks(text: str) -> list[str]:
    from thinkstop.benchmarks.tasks import check_task

    try:
        return [check_task(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="local folder laid out like the upstream task data (else "
        "$THINKSTOP_DATA_DIR, else download to the cache)",
    )
    parser.add_argument(
        "--grades-csv",
        type=Path,
        default=None,
        help="a real student-lifestyle CSV for grades_regression (comma, semicolon or tab "
        "separated; columns Student_ID, the five *_Hours_Per_Day, Stress_Level, Gender, "
        "Grades)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the generated items and of each task's item order (default: 0)",
    )


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="the paper's stress tests: fixed budgets vs policies",
        description="Benchmark halting policies against fixed reasoning "
        "budgets on the four stress tests of Gema et al. "
        "(arXiv 2507.14417).",
    )
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)
    _add_sample(bench_sub)
    run = bench_sub.add_parser("run", help="run the benchmark against a model", epilog=_TASK_HELP)
    _run_what(run)
    _run_how(run)
    _data_args(run)
    run.set_defaults(func=run_bench)

    report = bench_sub.add_parser("report", help="rebuild summary, report and plots from DIR")
    report.add_argument("dir", type=Path, help="a `bench run --out` folder")
    report.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    report.set_defaults(func=run_report)

    from thinkstop.benchmarks.gate import add_gate_parser

    add_gate_parser(bench_sub)


def _add_sample(bench_sub: Any) -> None:
    sample = bench_sub.add_parser("sample", help="print task items", epilog=_TASK_HELP)
    sample.add_argument("--task", required=True, type=lambda t: _tasks(t)[0],
                        help="the task to print items of")
    sample.add_argument("--n", type=_positive, default=3,
                        help="how many items, difficulty levels in turn (default: %(default)s)")
    sample.add_argument("--items", default=None, metavar="FILE", help=_ITEMS_HELP)
    sample.add_argument(
        "--budget",
        type=int,
        default=None,
        help="show the system prompt for this requested budget (default natural)",
    )
    sample.add_argument("--json", action="store_true", help="one JSON object per line")
    _data_args(sample)
    sample.set_defaults(func=run_sample)


def _run_what(run: argparse.ArgumentParser) -> None:
    """What a run asks: the model, the tasks and items, the budgets, runs and regimes."""
    run.add_argument(
        "--model",
        required=True,
        help="any litellm model id, openai/<name> with --api-base, or local/<name>",
    )
    run.add_argument("--api-base", default=None, help="base URL of an OpenAI-compatible server")
    run.add_argument("--api-key", default=None, help="API key (default: the provider's env var)")
    run.add_argument(
        "--tasks",
        type=_tasks,
        default=None,
        help="comma-separated task names (default: the tasks named by --items, else "
        f"{','.join(DEFAULT_TASKS)})",
    )
    run.add_argument(
        "--task",
        type=lambda t: _tasks(t)[0],
        default=None,
        help="one task name (the same as --tasks with a single name)",
    )
    run.add_argument(
        "--items",
        action="append",
        default=None,
        metavar="[TASK=]FILE",
        help=f"{_ITEMS_HELP}; repeat as TASK=FILE for several tasks",
    )
    run.add_argument(
        "--n",
        type=_positive,
        default=None,
        help=f"items per task, difficulty levels in turn (default: {DEFAULT_N}; every item "
        "of an --items file)",
    )
    run.add_argument(
        "--budgets",
        type=_ints,
        default=None,
        help="comma-separated requested and truncation budgets in reasoning tokens "
        f"(default: the paper's {_PAPER_BUDGETS})",
    )
    run.add_argument(
        "--runs",
        type=_positive,
        default=1,
        help="independent runs per item of the requested and truncation budgets and the "
        "policies (one recorded trace per item and run); summaries average each item's "
        "runs (the paper uses 3; default: %(default)s)",
    )
    run.add_argument(
        "--policies",
        action="append",
        default=None,
        help="policy specs, comma-separated or repeated (default: plateau)",
    )
    run.add_argument(
        "--regimes",
        default="requested,truncate,natural,policies",
        help="comma-separated regimes: requested, truncate, natural, policies, anchored "
        "(natural thinking with worked examples as few-shot turns; see --anchors) "
        "(default: requested,truncate,natural,policies)",
    )
    run.add_argument(
        "--anchors",
        metavar="FILE",
        default=None,
        help="worked examples for the anchored regime, in the proxy's anchors format "
        "(JSONL of {\"question\", \"answer\"}); default: each task's own generator at "
        "another seed, answered with the known answers (ai_risk needs a file)",
    )
    run.add_argument(
        "--anchors-max",
        type=_positive,
        default=8,
        help="examples per anchored request: the first N (default: %(default)s)",
    )
    run.add_argument(
        "--samples",
        type=_positive,
        default=5,
        help="natural samples per item; the recorded traces count as the first ones "
        "(default: %(default)s)",
    )


def _run_how(run: argparse.ArgumentParser) -> None:
    """How a run asks: probing, token limits, the budget-0 prefill, sampling, output."""
    run.add_argument(
        "--chunk-tokens",
        type=int,
        default=256,
        help="probe every N reasoning tokens (default: %(default)s)",
    )
    run.add_argument(
        "--probe-tokens", type=int, default=16, help="max tokens per probe (default: %(default)s)"
    )
    run.add_argument(
        "--max-reasoning",
        type=_positive,
        default=None,
        help="cap on reasoning tokens per run; the answer is then forced and the row marked "
        "capped (default: the paper's limits: budget + 16384 for open-weight models, 32768 "
        "for natural thinking)",
    )
    from thinkstop.benchmarks.prompts import THINK_PREFILL_HELP, THINK_PREFILLS

    run.add_argument(
        "--think-prefill",
        choices=THINK_PREFILLS,
        default="auto",
        help=THINK_PREFILL_HELP,
    )
    run.add_argument(
        "--concurrency", type=int, default=4, help="items in flight at once (default: %(default)s)"
    )
    run.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries per failed call, with exponential backoff (default: %(default)s)",
    )
    run.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default: the paper's: 1.0 for API models, 0.6 for others)",
    )
    run.add_argument("--top-p", type=float, default=None, help="nucleus sampling top_p")
    run.add_argument(
        "--cautioned",
        action="store_true",
        help="the paper's cautioned budget prompt (need not use all tokens)",
    )
    run.add_argument(
        "--live", action="store_true", help="also run each policy live through the halting loop"
    )
    run.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder; re-running with the same folder resumes the run",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def run_sample(args: argparse.Namespace) -> int:
    from thinkstop.benchmarks.data import DataError
    from thinkstop.benchmarks.prompts import messages
    from thinkstop.benchmarks.tasks import Options, load_items

    try:
        from thinkstop.benchmarks.tasks.released import items_files

        files = items_files([args.items] if args.items else None, [args.task])
        items = load_items(args.task, args.n, args.seed,
                           Options(args.data_dir, args.grades_csv, files))
    except (DataError, ValueError, OSError) as exc:
        print(f"thinkstop bench sample: {exc}", file=sys.stderr)
        return 2
    for item in items:
        record = {**item.to_json(), "messages": messages(item, args.budget)}
        if args.json:
            print(json.dumps(record))
            continue
        print(
            f"=== {item.id}  expected={item.expected}  level={item.level}  "
            f"meta={json.dumps(item.meta)}"
        )
        for message in record["messages"]:
            print(f"--- {message['role']}\n{message['content']}")
        print()
    return 0


def _run_tasks(args: argparse.Namespace) -> list[str]:
    """--tasks, else --task, else the tasks --items names, else the default tasks."""
    if args.tasks and args.task:
        raise ValueError("give --tasks or --task, not both")
    if args.tasks:
        return list(args.tasks)
    if args.task:
        return [args.task]
    from thinkstop.benchmarks.tasks import task_names

    named = [v.partition("=")[0] for v in args.items or [] if "=" in v]
    named = [t for t in named if t in task_names()]
    return list(dict.fromkeys(named)) or list(DEFAULT_TASKS)


def _config(args: argparse.Namespace) -> Any:
    from thinkstop.benchmarks.config import PAPER_BUDGETS, BenchConfig
    from thinkstop.benchmarks.tasks.released import items_files
    from thinkstop.proxy.upstreams.local.model_files import sha256_file

    tasks = _run_tasks(args)
    files = items_files(args.items, tasks)
    budgets = PAPER_BUDGETS if args.budgets is None else args.budgets
    return BenchConfig(
        model=args.model,
        tasks=tuple(tasks),
        n=args.n,
        seed=args.seed,
        budgets=tuple(sorted(set(budgets))),
        policies=tuple(split_policies(args.policies or ["plateau"])),
        regimes=tuple(r.strip() for r in args.regimes.split(",") if r.strip()),
        samples=args.samples,
        runs=args.runs,
        think_prefill=args.think_prefill,
        items_files={t: str(p) for t, p in files.items()},
        items_sha256={t: sha256_file(p) for t, p in files.items()},
        chunk_tokens=args.chunk_tokens,
        probe_tokens=args.probe_tokens,
        max_reasoning=args.max_reasoning,
        concurrency=args.concurrency,
        retries=args.retries,
        live=args.live,
        cautioned=args.cautioned,
        temperature=args.temperature,
        top_p=args.top_p,
        api_base=args.api_base,
        data_dir=str(args.data_dir) if args.data_dir else None,
        grades_csv=str(args.grades_csv) if args.grades_csv else None,
        anchors=args.anchors,
        anchors_max=args.anchors_max,
    )


def build_upstream(model: str, api_base: str | None, api_key: str | None) -> Any:
    """An Upstream for any litellm model or ``local/...``, via the proxy's factory."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.upstreams.registry import build_upstream as factory

    params: dict[str, Any] = {"model": model}
    if api_base:
        params["api_base"] = api_base
    if api_key:
        params["api_key"] = api_key
    return factory(model, params)


def _missing_dependencies(*, plots: bool) -> str | None:
    """What the run would need at its end but cannot import, checked before it starts
    (a run of hours must not die at the plots)."""
    import importlib.util

    if plots and importlib.util.find_spec("matplotlib") is None:
        return ("matplotlib is not importable, and the report's plots need it: "
                "pip install matplotlib (or pass --no-plots)")
    return None


def run_bench(args: argparse.Namespace) -> int:
    import asyncio

    from thinkstop.benchmarks.data import DataError
    from thinkstop.benchmarks.runner import ResumeError, load_all_items, load_anchors, run_units
    from thinkstop.scheduler.registry import PolicySpecError, create_policy

    try:
        config = _config(args)
        for spec in config.policies:
            create_policy(spec)
        items = load_all_items(config)
        anchors = load_anchors(config, items)
    except (PolicySpecError, ValueError, DataError, OSError) as exc:
        print(f"thinkstop bench run: {exc}", file=sys.stderr)
        return 2
    missing = _missing_dependencies(plots=not args.no_plots)
    if missing:
        print(f"thinkstop bench run: {missing}", file=sys.stderr)
        return 2
    from thinkstop.proxy.upstreams.base import UpstreamConfigError

    try:
        upstream = build_upstream(config.model, args.api_base, args.api_key)
    except ImportError as exc:
        print(f"thinkstop bench run: no upstream adapter available ({exc})", file=sys.stderr)
        return 2
    except UpstreamConfigError as exc:
        print(f"thinkstop bench run: {exc}", file=sys.stderr)
        return 2

    async def main() -> Any:
        try:
            live = None
            if config.live:
                from thinkstop.benchmarks.live import live_runner

                live = live_runner(config, upstream)
            return await run_units(
                config, upstream, args.out, progress=not args.no_progress, live=live, items=items,
                anchors=anchors,
            )
        finally:
            await upstream.aclose()

    try:
        report = asyncio.run(main())
    except ResumeError as exc:
        print(f"thinkstop bench run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; finished work is kept in {args.out} (re-run to resume)",
            file=sys.stderr,
        )
        return 130
    write_outputs(args.out, plots=not args.no_plots)
    print(
        f"{report.done} calls done, {report.skipped} already done, {report.failed} failed; "
        f"results in {args.out}",
        file=sys.stderr,
    )
    return 1 if report.failed else 0


def write_outputs(out: Path, *, plots: bool = True) -> dict[str, Any]:
    """summary.json, report.md and plots/*.png from the run folder's files."""
    from thinkstop.benchmarks.report import render
    from thinkstop.benchmarks.store import JsonlStore
    from thinkstop.benchmarks.summary import summarize

    config_path = out / "run.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    summary = summarize(JsonlStore(out / "items.jsonl").load(), config)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    pictures: dict[str, str] = {}
    if plots and summary["tasks"]:
        from thinkstop.benchmarks.plots import plot_all

        pictures = plot_all(summary, out / "plots")
    (out / "report.md").write_text(render(summary, pictures), encoding="utf-8")
    return summary


def run_report(args: argparse.Namespace) -> int:
    if not (args.dir / "items.jsonl").exists():
        print(f"thinkstop bench report: {args.dir}/items.jsonl not found", file=sys.stderr)
        return 2
    try:
        write_outputs(args.dir, plots=not args.no_plots)
    except ValueError as exc:
        print(f"thinkstop bench report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dir}/summary.json and {args.dir}/report.md", file=sys.stderr)
    return 0
