"""Probe schedules compared by replay: what each costs to watch, and what it keeps.

Every trace must be recorded with dense probes (``bench run --chunk-tokens 32``: a probe
at every boundary). Each schedule keeps the steps it would have probed at
(:func:`thinkstop.scheduler.schedule.select`), each policy is replayed on what is kept,
and the report gives, per (schedule, policy): accuracy with its 95% Wilson interval,
mean reasoning tokens, probes per trace, and the cost under the two billing models:

- ``cached``: a prefix cache serves the probes' prompts (the embedded model, vLLM or
  SGLang prefix caching): reasoning + probe generated tokens + uncached prompt tokens;
- ``uncached``: every probe re-sends the prompt and all reasoning so far (a token-billed
  API without prompt caching): reasoning + probe generated + every probe prompt token.

Against ``fixed`` (every recorded boundary) the report says, per policy and schedule,
whether the schedule keeps accuracy within fixed's interval and by how much it cuts probe
cost. Run::

    python -m thinkstop.benchmarks.perf.schedules benchmarks/results/local-qwen1.5b/traces.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thinkstop.benchmarks.stats import mean_ci
from thinkstop.scheduler.schedule import create_schedule, select
from thinkstop.scheduler.sweep import TraceBatch, evaluate
from thinkstop.scheduler.trace import Trace, parse_traces

DEFAULT_SCHEDULES = ("fixed", "geometric:first=32,factor=1.5,max_gap=256",
                     "geometric:first=64,factor=2,max_gap=512",
                     "transitions:min_gap=32,max_gap=256", "transitions:min_gap=64,max_gap=512")
DEFAULT_POLICIES = ("plateau", "consistency:window=2", "consistency:window=3",
                    "confidence:threshold=0.9", "sprt")


def _load(paths: Sequence[Path]) -> list[Trace]:
    traces: list[Trace] = []
    for path in paths:
        traces += parse_traces(path.read_text(encoding="utf-8").splitlines())
    return traces


def compare(traces: Sequence[Trace], schedules: Sequence[str],
            policies: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (schedule, policy), on the live view of every trace."""
    chunk = int(np.median([t.chunk_tokens for t in traces]))
    live = [t.as_live() for t in traces]
    rows = []
    for sched in schedules:
        kept = [select(t, create_schedule(sched, chunk)) for t in live]
        batch = TraceBatch(kept)
        probes = float(np.mean([len(t.steps) for t in kept]))
        for spec in policies:
            out = evaluate(batch, spec)
            prompt = (out.probe_prompt_tokens if out.probe_prompt_tokens is not None
                      else np.zeros_like(out.tokens))
            cached = (out.probe_cached_tokens if out.probe_cached_tokens is not None
                      else np.zeros_like(out.tokens))
            generated = out.tokens + out.probe_tokens
            rows.append({
                "schedule": sched, "policy": spec,
                "accuracy": mean_ci(out.correct.astype(np.float64)).as_dict(),
                "reasoning_tokens": round(out.mean_tokens, 1),
                "probes_per_trace_recorded": round(probes, 2),
                "probe_generated": round(out.mean_probe_tokens, 1),
                "probe_prompt": round(float(prompt.mean()), 1),
                "probe_cached": round(float(cached.mean()), 1),
                "cost_cached": round(float((generated + prompt - cached).mean()), 1),
                "cost_uncached": round(float((generated + prompt).mean()), 1),
                "probe_cost_cached": round(float((out.probe_tokens + prompt - cached).mean()), 1),
                "probe_cost_uncached": round(float((out.probe_tokens + prompt).mean()), 1),
                "halted": round(float(out.halted.mean()), 3),
            })
    return rows


def verdicts(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each non-fixed schedule against ``fixed`` under the same policy."""
    base = {r["policy"]: r for r in rows if r["schedule"] == "fixed"}
    out = []
    for r in rows:
        ref = base.get(r["policy"])
        if ref is None or r["schedule"] == "fixed":
            continue
        acc, ref_acc = r["accuracy"], ref["accuracy"]
        within = ref_acc["low"] <= acc["mean"] <= ref_acc["high"]
        cut = {m: (1 - r[f"probe_cost_{m}"] / ref[f"probe_cost_{m}"])
               if ref[f"probe_cost_{m}"] else 0.0 for m in ("cached", "uncached")}
        out.append({"schedule": r["schedule"], "policy": r["policy"],
                    "accuracy": acc["mean"], "fixed_accuracy": ref_acc["mean"],
                    "within_fixed_interval": within,
                    "probe_cost_cut_cached": round(cut["cached"], 3),
                    "probe_cost_cut_uncached": round(cut["uncached"], 3),
                    "halves_probe_cost_at_equal_accuracy":
                        within and min(cut.values()) >= 0.5})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare probe schedules by replay on traces recorded with dense probes.")
    parser.add_argument("traces", nargs="+", type=Path)
    parser.add_argument("--schedule", action="append", default=None,
                        help=f"a schedule spec, repeated (default: {', '.join(DEFAULT_SCHEDULES)})")
    parser.add_argument("--policy", action="append", default=None,
                        help=f"a policy spec, repeated (default: {', '.join(DEFAULT_POLICIES)})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        traces = _load(args.traces)
        schedules = args.schedule or list(DEFAULT_SCHEDULES)
        if "fixed" not in schedules:
            schedules = ["fixed", *schedules]
        rows = compare(traces, schedules, args.policy or list(DEFAULT_POLICIES))
    except (OSError, ValueError) as exc:
        print(f"schedules: {exc}", file=sys.stderr)
        return 2
    checks = verdicts(rows)
    if args.json:
        print(json.dumps({"traces": len(traces), "rows": rows, "vs_fixed": checks}, indent=2))
        return 0
    print(f"{len(traces)} traces; costs are means per trace in tokens")
    print(f"{'schedule':42} {'policy':26} {'accuracy':>22} {'reason':>7} {'probes':>6} "
          f"{'cached':>8} {'uncached':>9}")
    for r in rows:
        a = r["accuracy"]
        print(f"{r['schedule']:42} {r['policy']:26} "
              f"{a['mean']:.3f} [{a['low']:.3f},{a['high']:.3f}]  {r['reasoning_tokens']:7.1f} "
              f"{r['probes_per_trace_recorded']:6.1f} {r['cost_cached']:8.1f} "
              f"{r['cost_uncached']:9.1f}")
    print("\nagainst fixed (probe cost cut, cached / uncached billing):")
    for c in checks:
        mark = "halves probe cost at equal accuracy" if c["halves_probe_cost_at_equal_accuracy"] \
            else ("accuracy within fixed's interval" if c["within_fixed_interval"]
                  else "accuracy outside fixed's interval")
        print(f"  {c['schedule']:42} {c['policy']:26} {c['probe_cost_cut_cached']:+.0%} / "
              f"{c['probe_cost_cut_uncached']:+.0%}  {mark}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
