"""``thinkstop replay``: score halting policies on recorded traces, offline, in seconds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_replay_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="score halting policies on recorded traces, with no model calls",
        description=(
            "Replay recorded thinkstop.trace/1 traces under one or more halting policies. "
            "Prints one row per policy, in the order given, plus a 'natural' row (the model "
            "left alone): accuracy, mean reasoning tokens, mean probe tokens, and reasoning "
            "tokens saved against natural net of probe tokens."
        ),
        epilog=(
            "policy specs: name or name:key=value,... e.g. plateau, "
            "plateau:window=3,epsilon=0.05,min_confidence=0.8, fixed:budget=2048, "
            "consistency:window=3, confidence:threshold=0.9, sprt:alpha=0.05. Guard-rails "
            "min_tokens, max_tokens and max_probes apply to any policy."
        ),
    )
    parser.add_argument("traces", type=Path, help="trace file (JSONL, format thinkstop.trace/1)")
    parser.add_argument(
        "--policy",
        "-p",
        action="append",
        dest="policies",
        metavar="SPEC",
        help="a policy spec; repeat for several (default: plateau)",
    )
    parser.add_argument("--json", action="store_true", help="print {'policies': [rows...]}")
    parser.set_defaults(func=run_replay)


def replay_rows(text_lines: list[str], specs: list[str]) -> list[dict[str, Any]]:
    """The table ``thinkstop replay`` prints, as dicts (policies in order, then natural)."""
    from thinkstop.scheduler.registry import parse_spec
    from thinkstop.scheduler.sweep import BatchOutcome, TraceBatch, evaluate, natural_outcome
    from thinkstop.scheduler.trace import parse_traces

    traces = list(parse_traces(text_lines))
    batch = TraceBatch(traces)
    # Policies see the boundaries the live proxy probes; fixed budgets every step.
    live = TraceBatch([t.as_live() for t in traces])
    natural = natural_outcome(batch)

    def row(name: str, out: BatchOutcome) -> dict[str, Any]:
        saved = natural.mean_tokens - out.mean_tokens - out.mean_probe_tokens
        return {
            "policy": name,
            "n": batch.n,
            "accuracy": round(out.accuracy, 4),
            "mean_reasoning_tokens": round(out.mean_tokens, 1),
            "mean_probe_tokens": round(out.mean_probe_tokens, 1),
            "tokens_saved": round(saved, 1),
            "tokens_saved_pct": round(100.0 * saved / natural.mean_tokens, 1)
            if natural.mean_tokens
            else 0.0,
        }

    rows = [row(spec, evaluate(batch if parse_spec(spec).name == "fixed" else live, spec))
            for spec in specs]
    rows.append(row("natural", natural))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        ("policy", "policy"),
        ("n", "n"),
        ("accuracy", "accuracy"),
        ("mean_reasoning_tokens", "reasoning"),
        ("mean_probe_tokens", "probe"),
        ("tokens_saved", "saved"),
        ("tokens_saved_pct", "saved %"),
    ]
    cells = [[str(r[key]) for key, _ in headers] for r in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(headers)]
    lines = ["  ".join(t.ljust(w) if i == 0 else t.rjust(w) for i, ((_, t), w) in
                       enumerate(zip(headers, widths, strict=True)))]
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths, strict=True))))
    return "\n".join(lines)


def run_replay(args: argparse.Namespace) -> int:
    from thinkstop.proxy.engine import weights
    from thinkstop.scheduler.registry import PolicySpecError, create_policy

    weights.install()  # learned:weights=PATH specs read their file
    from thinkstop.scheduler.trace import TraceError

    specs: list[str] = args.policies or ["plateau"]
    try:
        for spec in specs:
            create_policy(spec)
    except PolicySpecError as exc:
        print(f"thinkstop replay: bad --policy: {exc}", file=sys.stderr)
        return 2
    try:
        lines = args.traces.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        print(f"thinkstop replay: cannot read {args.traces}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        rows = replay_rows(lines, specs)
    except TraceError as exc:
        print(f"thinkstop replay: {args.traces}: {exc}", file=sys.stderr)
        return 2
    if not rows or rows[-1]["n"] == 0:
        print(f"thinkstop replay: {args.traces} holds no traces", file=sys.stderr)
        return 2
    print(json.dumps({"policies": rows}, indent=2) if args.json else format_table(rows))
    return 0
