"""Replay speed: policy sweeps over many traces, and the live per-boundary decision cost.

Target (issue "The scheduler"): 1,000 policy configurations over 10,000 traces of 64 steps
(640 million decisions) in under 60 s on one core. Run::

    python -m thinkstop.benchmarks.perf.replay_speed            # the full target size
    python -m thinkstop.benchmarks.perf.replay_speed --traces 1000 --configs 100   # a quick look

The process pins itself to one core and one BLAS thread. Timings are medians where
repeated; the machine is shared, so compare figures from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

from thinkstop.scheduler.registry import create_policy
from thinkstop.scheduler.signals import Observation
from thinkstop.scheduler.sweep import TraceBatch, evaluate
from thinkstop.scheduler.trace import Natural, Step, Trace, parse_traces


def synthetic_traces(n: int, steps: int, seed: int) -> list[Trace]:
    """Traces with logprobs, settling at a random point and sometimes drifting after."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        settle = rng.randrange(steps)
        drift = rng.randrange(settle, steps + 8)
        rows = []
        for k in range(steps):
            if k < settle:
                answer = rng.choice(["1", "2", "3", None])
            elif k < drift:
                answer = "2"
            else:
                answer = "3"
            logprob = None if answer is None else -rng.uniform(0.01, 1.5)
            rows.append(Step(tokens=64 * (k + 1), answer=answer, logprob=logprob,
                             probe_tokens=rng.randint(3, 8), hedged=rng.random() < 0.05))
        out.append(Trace(id=str(i), task="speed", expected="2", chunk_tokens=64,
                         steps=tuple(rows), natural=Natural(64 * steps + 30, "3")))
    return out


def config_grid(limit: int) -> list[str]:
    grid: list[str] = []
    for window in (1, 2, 3, 4):
        for e in range(10):
            for c in range(10):
                grid.append(f"plateau:window={window},epsilon={0.02 + 0.03 * e:.2f},"
                            f"min_confidence={0.1 * c:.1f}")
    grid += [f"confidence:threshold={0.5 + 0.005 * t:.3f}" for t in range(100)]
    grid += [f"consistency:window={w},min_tokens={64 * m}" for w in range(1, 11)
             for m in range(10)]
    grid += [f"sprt:p1={0.6 + 0.07 * p:.2f},alpha={0.01 + 0.02 * a:.2f}" for p in range(5)
             for a in range(10)]
    grid += [f"sprt:alpha=0.05,min_tokens={64 * m}" for m in range(50)]
    grid += [f"fixed:budget={16 * b}" for b in range(300)]
    step = max(1, len(grid) // limit)
    return grid[::step][:limit]


def live_decision_latency(repeats: int = 20_000) -> dict[str, float]:
    """Per-boundary cost of the streaming path: one observe() on a fresh-ish policy."""
    results: dict[str, float] = {}
    rng = random.Random(1)
    obs = [Observation(tokens=64 * (i + 1), answer=rng.choice(["2", "3", "two"]),
                       logprob=-rng.uniform(0, 1), alternatives={"2": -0.2, "3": -1.9})
           for i in range(64)]
    for spec in ("plateau", "consistency", "confidence", "sprt"):
        samples = []
        for _ in range(repeats // 64):
            policy = create_policy(spec)
            start = time.perf_counter_ns()
            for o in obs:
                policy.observe(o)
            samples.append((time.perf_counter_ns() - start) / len(obs))
        results[spec] = statistics.median(samples) / 1000.0
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--configs", type=int, default=1_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    lines = [t.dumps() for t in synthetic_traces(args.traces, args.steps, seed=0)]
    configs = config_grid(args.configs)
    tp = time.perf_counter()
    traces = list(parse_traces(lines))
    t0 = time.perf_counter()
    batch = TraceBatch(traces)
    t1 = time.perf_counter()
    for spec in configs:
        evaluate(batch, spec)
    t2 = time.perf_counter()
    decisions = len(configs) * args.traces * args.steps
    report = {
        "traces": args.traces,
        "steps": args.steps,
        "configs": len(configs),
        "decisions": decisions,
        "parse_jsonl_s": round(t0 - tp, 2),
        "batch_build_s": round(t1 - t0, 2),
        "sweep_s": round(t2 - t1, 2),
        "total_s": round(t2 - tp, 2),
        "decisions_per_s": round(decisions / (t2 - tp)),
        "live_observe_us_median": {k: round(v, 2) for k, v in live_decision_latency().items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
