"""``thinkstop tune TRACES...``: the policy to enforce, from a model's own traces."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """\
examples:
  thinkstop tune traces/*.jsonl                      labelled traces: keep natural accuracy
  thinkstop tune shadow/*.jsonl --objective agreement --max-loss 0.02
                                                     production traffic: the model's own
                                                     answer, 2 points at most given up
  thinkstop tune t.jsonl --json --plot frontier.png --weights-out learned.json
"""


def add_tune_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "tune",
        help="pick the halting policy for your model from its recorded traces",
        description=(
            "Replay every configuration of the registered policies (and a learned policy "
            "fitted to the traces) on thinkstop.trace/1 files, pick one by k-fold "
            "cross-validation (never scored on the traces it was picked on), and print the "
            "Pareto frontier, the recommendation with its cross-validated score, and the "
            "thinkstop: block to paste into the config."),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("traces", nargs="+", type=Path, metavar="TRACES",
                        help="trace JSONL files (thinkstop bench run's traces.jsonl, or "
                        "shadow mode's files)")
    parser.add_argument("--objective", choices=("accuracy", "agreement"), default="accuracy",
                        help="accuracy: match the expected answers (labelled traces); "
                        "agreement: match the model's own natural answer (no labels "
                        "needed) (default: %(default)s)")
    parser.add_argument("--max-loss", type=float, default=0.0, metavar="X",
                        help="score the recommendation may give up, against the best "
                        "configuration and against the model left alone, for fewer tokens, "
                        "e.g. 0.02 (default: %(default)s)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds "
                        "(default: %(default)s)")
    parser.add_argument("--cost", choices=("tokens", "billed"), default="tokens",
                        help="tokens: reasoning + probe tokens generated; billed: also the "
                        "probes' prompt tokens a prefix cache did not serve "
                        "(default: %(default)s)")
    parser.add_argument("--by", choices=("task", "model"), default=None,
                        help="also tune each task (the traces' task field) or model (their "
                        "meta.model) on its own, and recommend per group where a group's "
                        "own choice beats the shared one significantly on its held-out "
                        "traces (paired 95%% interval)")
    parser.add_argument("--no-learned", action="store_true",
                        help="leave the learned policy out of the search")
    parser.add_argument("--weights-out", type=Path, default=None, metavar="PATH",
                        help="where to write the learned policy's weights when it is "
                        "recommended (default: learned-weights.json beside the first "
                        "trace file)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="draw the frontier, natural and fixed budgets to this PNG")
    parser.set_defaults(func=run_tune)


def _load(paths: list[Path]) -> list[Any]:
    from thinkstop.scheduler.trace import parse_traces

    traces = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            traces += list(parse_traces(lines))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    if not traces:
        raise ValueError("no traces in " + ", ".join(map(str, paths)))
    return traces


def _group_of(trace: Any, by: str) -> str:
    if by == "task":
        return str(trace.task)
    return str((trace.meta or {}).get("model") or "unknown")


def _by_group(args: argparse.Namespace, traces: list[Any], shared: Any,
              chunk: int) -> dict[str, tuple[Any, Any]]:
    """Each group tuned on its own traces (same folds rule), with the paired verdict
    against the shared recommendation; groups too small to cross-validate are left out."""
    import numpy as np

    from thinkstop.benchmarks.tune import compare_group, tune, with_budgets
    from thinkstop.benchmarks.tune import default_grid as grid

    names = [_group_of(t, args.by) for t in traces]
    out: dict[str, tuple[Any, Any]] = {}
    for name in sorted(set(names)):
        rows = np.array([i for i, g in enumerate(names) if g == name], dtype=np.int64)
        if len(rows) < 4:
            continue
        subset = [traces[i] for i in rows]
        own = tune(subset, objective=args.objective, max_loss=args.max_loss,
                   folds=args.folds, cost=args.cost, seed=args.seed,
                   specs=with_budgets(grid(chunk), subset), learned=not args.no_learned)
        out[name] = (own, compare_group(name, shared, rows, own, args.max_loss))
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "group"


def _enforceable(result: Any, target: Path, sources: list[Path]) -> str:
    """The spec to paste: a learned recommendation gets its weights written to
    ``target`` and named in the spec."""
    spec = str(result.recommended)
    if result.recommended_model is None:
        return spec
    about = {"objective": result.objective, "traces": result.n,
             "trained_on": [str(p) for p in sources]}
    target.write_text(json.dumps(result.recommended_model.to_json(**about), indent=2) + "\n",
                      encoding="utf-8")
    threshold = spec.split("threshold=")[1]
    return f"learned:weights={target},threshold={threshold}"


def _yaml(spec: str, chunk: int) -> str:
    return f'thinkstop:\n  policy: "{spec}"\n  chunk_tokens: {chunk}\n'


def run_tune(args: argparse.Namespace) -> int:
    from thinkstop.benchmarks.tune import default_grid as grid
    from thinkstop.benchmarks.tune import tune, with_budgets
    from thinkstop.proxy.engine import weights

    weights.install()
    try:
        traces = _load(args.traces)
        chunk = sorted(t.chunk_tokens for t in traces)[len(traces) // 2]
        specs = with_budgets(grid(chunk), traces)
        result = tune(traces, objective=args.objective, max_loss=args.max_loss,
                      folds=args.folds, cost=args.cost, seed=args.seed, specs=specs,
                      learned=not args.no_learned)
        groups = _by_group(args, traces, result, chunk) if args.by else {}
    except ValueError as exc:
        print(f"thinkstop tune: {exc}", file=sys.stderr)
        return 2
    target = args.weights_out or args.traces[0].with_name("learned-weights.json")
    try:
        spec = _enforceable(result, target, args.traces)
        specs_by_group = {
            name: _enforceable(g, target.with_name(f"{target.stem}-{_slug(name)}.json"),
                               args.traces)
            for name, (g, _) in groups.items()}
    except OSError as exc:
        print(f"thinkstop tune: cannot write the learned weights: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        from thinkstop.benchmarks.plots import plot_frontier

        plot_frontier(result, args.plot)
    if args.json:
        print(json.dumps(_as_json(result, spec, chunk, groups, specs_by_group), indent=2))
    else:
        print(_report(result, spec, chunk, groups, specs_by_group, args.by))
    return 0


def _as_json(result: Any, spec: str, chunk: int, groups: dict[str, Any],
             specs_by_group: dict[str, str]) -> dict[str, Any]:
    from thinkstop.scheduler.registry import DEFAULT_POLICY

    return {
        "recommended": {"policy": spec, "chunk_tokens": chunk,
                        "cv_score": result.cv_score.as_dict(),
                        "cv_cost": result.cv_cost.as_dict(),
                        "cv_choices": result.cv_choices},
        "objective": result.objective, "max_loss": result.max_loss, "cost": result.cost,
        "traces": result.n, "folds": result.folds, "configurations": result.configurations,
        "natural": {"score": result.natural_score.as_dict(),
                    "cost": result.natural_cost.as_dict()},
        "frontier": result.frontier,
        "baselines": result.baselines,
        "groups": {k: {"policy": specs_by_group[k], "cv_score": g.cv_score.as_dict(),
                       "cv_cost": g.cv_cost.as_dict(), "traces": g.n,
                       "natural": {"score": g.natural_score.as_dict(),
                                   "cost": g.natural_cost.as_dict()},
                       "no_thinking": g.baselines.get("fixed:budget=0"),
                       "default": g.baselines.get(DEFAULT_POLICY),
                       "shared": {"score": v.shared_score.as_dict(),
                                  "cost": v.shared_cost.as_dict()},
                       "vs_shared": {"score_gain": v.score_gain.as_dict(),
                                     "cost_saving": v.cost_saving.as_dict(),
                                     "differs": v.differs}}
                   for k, (g, v) in groups.items()},
    }


def _fmt(est: Any, digits: int = 3) -> str:
    return f"{est.mean:.{digits}f} [{est.low:.{digits}f}, {est.high:.{digits}f}]"


def _fmt_point(score: dict[str, Any], digits: int = 3) -> str:
    """A baseline's score as saved (an Estimate's dict)."""
    return (f"{score['mean']:.{digits}f} [{score['low']:.{digits}f}, "
            f"{score['high']:.{digits}f}]")


def _report(result: Any, spec: str, chunk: int, groups: dict[str, Any],
            specs_by_group: dict[str, str], by: str | None) -> str:
    from thinkstop.scheduler.registry import DEFAULT_POLICY

    what = "accuracy" if result.objective == "accuracy" else "agreement with natural"
    lines = [
        f"{result.n} traces, {result.configurations} configurations, {result.folds}-fold "
        f"cross-validation; objective: {what}; cost: {result.cost}",
        "",
        f"natural (no halting): {what} {_fmt(result.natural_score)}, "
        f"{result.natural_cost.mean:.1f} tokens",
    ]
    zero = result.baselines.get("fixed:budget=0")
    if zero:
        lines.append(f"no thinking (fixed:budget=0): {what} {zero['score']['mean']:.3f}, "
                     f"{zero['cost']['mean']:.1f} tokens")
    default = result.baselines.get(DEFAULT_POLICY)
    if default:
        lines.append(f"default policy ({DEFAULT_POLICY}, untuned): {what} "
                     f"{_fmt_point(default['score'])}, {default['cost']['mean']:.1f} tokens")
    lines += ["", "Pareto frontier (in-sample: every trace; score vs mean tokens incl. probes):"]
    for point in result.frontier[:25]:
        s, c = point["score"], point["cost"]
        lines.append(f"  {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]  "
                     f"{c['mean']:8.1f} tokens  {point['spec']}")
    if len(result.frontier) > 25:
        lines.append(f"  ... {len(result.frontier) - 25} more (--json lists them all)")
    saved = result.natural_cost.mean - result.cv_cost.mean
    lines += [
        "",
        f"recommended: {spec}",
        f"  why: the cheapest configuration within {result.max_loss:g} of the best {what} "
        "(and of natural's) on the training traces",
        f"  cross-validated (held-out folds): {what} {_fmt(result.cv_score)}, "
        f"{result.cv_cost.mean:.1f} tokens ({abs(saved):.1f} "
        f"{'fewer' if saved >= 0 else 'more'} than natural)",
        f"  picked per fold: {', '.join(result.cv_choices)}",
    ]
    if result.cv_score.mean + 1e-9 < result.natural_score.mean - result.max_loss:
        lines.append("  note: on held-out traces the rule lost more than max_loss: the traces "
                     "are too few or too varied for a confident choice")
    if spec == "natural":
        lines.append("  no configuration kept the score within max_loss: do not halt "
                     "(or allow a larger --max-loss)")
    if groups:
        lines += ["", "per group: the group's baselines (in-sample), the shared rule and the "
                  "group's own rule held out, and the own rule's gain (paired):"]
        for name, (g, v) in groups.items():
            mark = "differs" if v.differs else "same as shared"
            lines += [f"  {name} ({g.n} traces):",
                      f"    natural {_fmt(g.natural_score)}, {g.natural_cost.mean:.1f} tokens"]
            for label, key in (("no thinking", "fixed:budget=0"),
                               (f"default ({DEFAULT_POLICY})", DEFAULT_POLICY)):
                point = g.baselines.get(key)
                if point:
                    lines.append(f"    {label} {_fmt_point(point['score'])}, "
                                 f"{point['cost']['mean']:.1f} tokens")
            lines += [
                f"    shared rule, held out {_fmt(v.shared_score)}, {v.shared_cost.mean:.1f} "
                "tokens",
                f"    own rule {specs_by_group[name]}, held out {_fmt(g.cv_score)}, "
                f"{g.cv_cost.mean:.1f} tokens; gain {_fmt(v.score_gain)}, saves "
                f"{v.cost_saving.mean:.1f} tokens: {mark}",
            ]
        if not any(v.differs for _, v in groups.values()):
            lines.append("  no group's own choice beats the shared one significantly: "
                         "use the shared recommendation for all")
    lines += ["", "paste into the model's entry of the config:", _yaml(spec, chunk)]
    differing = [n for n, (_, v) in groups.items() if v.differs]
    if differing and by == "model":
        lines.append("or per model (those whose own choice differs significantly):")
        for name in differing:
            lines += [f"# {name}", _yaml(specs_by_group[name], chunk)]
    elif differing:
        lines.append("or per task, in the requests of that task (those whose own choice "
                     "differs significantly):")
        for name in differing:
            body = json.dumps({"thinkstop": {"policy": specs_by_group[name]}})
            lines.append(f"  {name}: extra_body={body}")
    return "\n".join(lines)
