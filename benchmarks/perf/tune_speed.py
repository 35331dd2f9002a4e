"""Tuning speed: ``thinkstop tune`` over many traces, configurations and folds.

Target (issue "Learn the halting policy"): 10,000 traces x 1,000 configurations x 5 folds
(plus the learned policy, fitted once per fold) in under 2 minutes on one core. Run::

    python -m thinkstop.benchmarks.perf.tune_speed                       # the full target size
    python -m thinkstop.benchmarks.perf.tune_speed --traces 1000 --configs 100   # a quick look

The traces and the grid are the replay-speed benchmark's (synthetic traces of 64 steps
that settle and sometimes drift). The process pins itself to one core; the timing covers
parsing the JSONL lines, the sweep, the folds and the report, i.e. what the command does.
"""

from __future__ import annotations

import os

# One BLAS thread: the target is one core, and numpy reads these when it is first imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

from thinkstop.benchmarks.perf.replay_speed import config_grid, synthetic_traces  # noqa: E402
from thinkstop.benchmarks.tune import tune  # noqa: E402
from thinkstop.scheduler.trace import parse_traces  # noqa: E402

TARGET_S = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--configs", type=int, default=1_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-learned", action="store_true",
                        help="leave the learned policy out of the search")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    lines = [t.dumps() for t in synthetic_traces(args.traces, args.steps, seed=0)]
    configs = config_grid(args.configs)
    start = time.perf_counter()
    traces = list(parse_traces(lines))
    parsed = time.perf_counter()
    result = tune(traces, specs=configs, folds=args.folds, learned=not args.no_learned)
    done = time.perf_counter()
    total = done - start
    report = {
        "traces": args.traces,
        "steps": args.steps,
        "configurations": result.configurations,
        "folds": result.folds,
        "parse_jsonl_s": round(parsed - start, 2),
        "tune_s": round(done - parsed, 2),
        "total_s": round(total, 2),
        "target_s": TARGET_S,
        "within_target": total <= TARGET_S,
        "recommended": result.recommended,
        "cv_score": round(result.cv_score.mean, 4),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
