"""``thinkstop tune``: fit the halting policy to a model's own traces, honestly.

Every configuration (the registered policies' parameter grids, with ``min_tokens``
guard-rails, and the ``learned`` policy fitted per fold) is replayed once on every trace
with the vectorised sweep. A configuration is then picked by **k-fold cross-validation**:
in each fold the rule below picks one on the other folds' traces and is scored on the
held-out ones, so the reported figure never comes from the traces the choice was made on.

The rule: the cheapest configuration (mean reasoning + probe tokens; with
``cost="billed"`` the probes' uncached prompt tokens count too) whose score on the
training traces is within ``max_loss`` of the best score there, and never more than
``max_loss`` below the model left alone (``natural``). Where halting beats natural (the
inverse-scaling case) that is the best halting configuration, or a cheaper one at most
``max_loss`` behind it; where it cannot, the cheapest that keeps natural's score; when
none does, natural itself. Objectives: ``accuracy`` needs labelled traces (``expected``);
``agreement`` scores "the same answer as the model alone" and needs no labels, so it runs
on shadow-mode traffic.

The recommendation is the rule applied to all traces; its cross-validated figure is the
estimate of how the rule does on new traces of the same kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from thinkstop.benchmarks.stats import Estimate, mean_ci
from thinkstop.scheduler import Guarded, GuardRails, Trace
from thinkstop.scheduler.learned import LearnedPolicy, LogisticModel, fit
from thinkstop.scheduler.registry import DEFAULT_POLICY
from thinkstop.scheduler.sweep import BatchOutcome, TraceBatch, evaluate, learned_features

Objective = Literal["accuracy", "agreement"]
Cost = Literal["tokens", "billed"]
NATURAL = "natural"
LEARNED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def default_grid(chunk_tokens: int) -> list[str]:
    """The configurations searched (about 300 specs; the learned policy adds its own)."""
    c = max(1, chunk_tokens)
    floors = (0, c, 2 * c, 4 * c)
    specs: list[str] = []
    for floor in floors:
        rail = f",min_tokens={floor}" if floor else ""
        specs += [f"consistency:window={w}{rail}" for w in (1, 2, 3, 4, 5)]
        specs += [f"confidence:window=2,threshold={t}{rail}"
                  for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
        specs += [f"plateau:window={w},epsilon={e},min_confidence={m}{rail}"
                  for w in (1, 2, 3) for e in (0.05, 0.1, 0.2, 0.4)
                  for m in (0.0, 0.05, 0.1, 0.2, 0.4, 0.6)]
        specs += [f"sprt:alpha={a}{rail}" for a in (0.01, 0.05, 0.1, 0.2)]
    return specs


@dataclass
class Candidate:
    """One configuration's per-trace outcome (every trace of the set)."""

    spec: str
    correct: npt.NDArray[np.bool_]
    cost: npt.NDArray[np.float64]
    reasoning: npt.NDArray[np.float64]
    probe: npt.NDArray[np.float64]


def relabel(traces: Sequence[Trace], objective: Objective) -> list[Trace]:
    """For ``agreement``, the model's own answer is the one to match."""
    if objective == "accuracy":
        missing = sum(1 for t in traces if t.expected is None)
        if missing:
            raise ValueError(f"objective accuracy needs labelled traces; {missing} of "
                             f"{len(traces)} have no expected answer (use --objective "
                             "agreement for unlabelled traffic)")
        return list(traces)
    return [replace(t, expected=t.natural.answer) for t in traces]


def _costs(out: BatchOutcome, cost: Cost) -> npt.NDArray[np.float64]:
    total = out.tokens.astype(np.float64) + out.probe_tokens
    if cost == "billed" and out.probe_prompt_tokens is not None:
        cached = out.probe_cached_tokens if out.probe_cached_tokens is not None else 0
        total = total + out.probe_prompt_tokens - cached
    return total


def _candidate(out: BatchOutcome, cost: Cost) -> Candidate:
    return Candidate(out.spec, out.correct.copy(), _costs(out, cost),
                     out.tokens.astype(np.float64), out.probe_tokens.astype(np.float64))


def replay_all(traces: Sequence[Trace], specs: Sequence[str], cost: Cost,
               batches: tuple[TraceBatch, TraceBatch] | None = None) -> list[Candidate]:
    """Every spec on every trace; policies see the live view (no probe at 0), fixed
    budgets the whole trace. ``batches``: the (whole, live) batches when already built."""
    whole, live = batches if batches is not None else replay_batches(traces)
    out = [_candidate(natural_outcome(whole), cost)]
    for spec in specs:
        batch = whole if spec.startswith("fixed") else live
        out.append(_candidate(evaluate(batch, spec), cost))
    return out


def replay_batches(traces: Sequence[Trace]) -> tuple[TraceBatch, TraceBatch]:
    """The traces as recorded (fixed budgets read them whole) and as the live loop sees
    them (no probe at token 0); built once, every fold reuses them."""
    return TraceBatch(traces), TraceBatch([t.as_live() for t in traces])


def natural_outcome(batch: TraceBatch) -> BatchOutcome:
    from thinkstop.scheduler.sweep import natural_outcome as natural

    return natural(batch)


def fit_learned(live: TraceBatch, rows: npt.NDArray[np.int64] | None = None, window: int = 2,
                l2: float = 1.0) -> LogisticModel:
    """The learned policy's model from the ``rows`` of a live batch (traces already
    relabelled; all of them by default): at every observed step, does the probe's answer
    match the answer that counts?"""
    x = learned_features(live, window)
    valid = live.valid & live.features(window, "js").answered
    if rows is not None:
        x, valid, correct = x[rows], valid[rows], live.correct[rows]
    else:
        correct = live.correct
    return fit(x[valid], correct[valid], l2=l2, window=window)


def learned_candidates(model: LogisticModel, live: TraceBatch, cost: Cost,
                       floors: Sequence[int]) -> list[Candidate]:
    out = []
    for threshold in LEARNED_THRESHOLDS:
        for floor in floors:
            policy = Guarded(policy=LearnedPolicy.from_model(model, threshold),
                             rails=GuardRails(min_tokens=floor))
            result = evaluate(live, policy)
            spec = f"learned:threshold={threshold}" + (f",min_tokens={floor}" if floor else "")
            out.append(_candidate(replace(result, spec=spec), cost))
    return out


def choose(candidates: Sequence[Candidate], rows: npt.NDArray[np.int64],
           max_loss: float) -> Candidate:
    """The cheapest candidate within ``max_loss`` of the best score on ``rows`` and of
    natural's (natural is ``candidates[0]``; it wins ties on cost)."""
    natural = candidates[0]
    scores = [float(c.correct[rows].mean()) for c in candidates]
    floor = max(max(scores), scores[0]) - max_loss
    feasible = [(float(c.cost[rows].mean()), i) for i, c in enumerate(candidates)
                if scores[i] >= floor - 1e-12]
    if not feasible:
        return natural
    return candidates[min(feasible)[1]]


@dataclass
class FoldResult:
    chosen: str
    test: npt.NDArray[np.int64]


@dataclass
class Tuning:
    """What ``tune`` found (see :func:`tune`)."""

    objective: Objective
    n: int
    folds: int
    max_loss: float
    cost: Cost
    recommended: str
    recommended_model: LogisticModel | None
    cv_score: Estimate
    cv_cost: Estimate
    cv_choices: list[str]
    natural_score: Estimate
    natural_cost: Estimate
    frontier: list[dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    configurations: int
    points: list[dict[str, Any]] = field(default_factory=list)
    # Per trace (input order): the held-out score and cost of the configuration its
    # fold's rule chose; what --by compares groups on.
    held_out_score: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    held_out_cost: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


def _point(cand: Candidate, rows: npt.NDArray[np.int64] | None = None) -> dict[str, Any]:
    sel = slice(None) if rows is None else rows
    score = mean_ci(cand.correct[sel].astype(np.float64))
    spent = mean_ci(cand.cost[sel])
    return {"spec": cand.spec, "score": score.as_dict(), "cost": spent.as_dict(),
            "reasoning_tokens": round(float(cand.reasoning[sel].mean()), 2),
            "probe_tokens": round(float(cand.probe[sel].mean()), 2)}


def pareto(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no other one beats on both score and cost, cheapest first."""
    ranked = sorted(candidates, key=lambda c: (float(c.cost.mean()), -float(c.correct.mean())))
    front: list[Candidate] = []
    best = -math.inf
    for cand in ranked:
        score = float(cand.correct.mean())
        if score > best + 1e-12:
            front.append(cand)
            best = score
    return front


def tune(traces: Sequence[Trace], *, objective: Objective = "accuracy", max_loss: float = 0.0,
         folds: int = 5, cost: Cost = "tokens", seed: int = 0,
         specs: Sequence[str] | None = None, learned: bool = True) -> Tuning:
    """Cross-validated policy selection over ``traces`` (module docstring)."""
    if len(traces) < 2:
        raise ValueError(f"tune needs at least 2 traces, got {len(traces)}")
    folds = max(2, min(folds, len(traces)))
    labelled = relabel(traces, objective)
    chunk = int(np.median([t.chunk_tokens for t in labelled]))
    grid = list(specs) if specs is not None else default_grid(chunk)
    floors = sorted({0, chunk, 2 * chunk})
    whole, live = replay_batches(labelled)
    everyone = replay_all(labelled, grid, cost, (whole, live))
    order = np.random.default_rng(seed).permutation(len(labelled))
    parts = np.array_split(order, folds)
    held_correct = np.zeros(len(labelled), dtype=np.float64)
    held_cost = np.zeros(len(labelled), dtype=np.float64)
    choices: list[str] = []
    for k, test in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != k])
        pool = list(everyone)
        if learned:
            fold_model = fit_learned(live, train, window=2)
            pool += learned_candidates(fold_model, live, cost, floors)
        chosen = choose(pool, train, max_loss)
        choices.append(chosen.spec)
        held_correct[test] = chosen.correct[test]
        held_cost[test] = chosen.cost[test]
    pool = list(everyone)
    model: LogisticModel | None = None
    if learned:
        model = fit_learned(live, window=2)
        pool += learned_candidates(model, live, cost, floors)
    final = choose(pool, np.arange(len(labelled)), max_loss)
    recommended_model = None
    if final.spec.startswith("learned:") and model is not None:
        threshold = float(final.spec.split("threshold=")[1].split(",")[0])
        recommended_model = replace(model, threshold=threshold)
    baselines = {NATURAL: _point(everyone[0])}
    for cand in everyone[1:]:
        if cand.spec.startswith("fixed"):
            baselines[cand.spec] = _point(cand)
    # The policy a user gets without tuning, as a reference (not a candidate unless the
    # grid holds it): what tuning is worth against doing nothing.
    default = next((c for c in everyone if c.spec == DEFAULT_POLICY), None)
    if default is None:
        default = _candidate(evaluate(live, DEFAULT_POLICY), cost)
    baselines[DEFAULT_POLICY] = _point(default)
    return Tuning(
        objective=objective, n=len(labelled), folds=folds, max_loss=max_loss, cost=cost,
        recommended=final.spec, recommended_model=recommended_model,
        cv_score=mean_ci(held_correct), cv_cost=mean_ci(held_cost), cv_choices=choices,
        held_out_score=held_correct, held_out_cost=held_cost,
        natural_score=mean_ci([float(v) for v in everyone[0].correct]),
        natural_cost=mean_ci([float(v) for v in everyone[0].cost]),
        frontier=[_point(c) for c in pareto(pool)], baselines=baselines,
        configurations=len(pool), points=[_point(c) for c in pool],
    )


def with_budgets(specs: Sequence[str], traces: Sequence[Trace]) -> list[str]:
    """``specs`` plus a fixed budget at every recorded boundary (the truncation curve,
    as baselines and as candidates)."""
    budgets = sorted({s.tokens for t in traces for s in t.steps})
    return [*specs, *(f"fixed:budget={b}" for b in budgets)]


@dataclass(frozen=True)
class GroupVerdict:
    """Does a group's own tuning beat the shared one on the group's traces?"""

    group: str
    n: int
    score_gain: Estimate  # own minus shared held-out score, paired per trace
    cost_saving: Estimate  # shared minus own held-out cost, paired per trace
    differs: bool
    shared_score: Estimate  # the shared rule's held-out score on the group's traces
    shared_cost: Estimate


def compare_group(group: str, shared: Tuning, rows: npt.NDArray[np.int64],
                  own: Tuning, max_loss: float) -> GroupVerdict:
    """Paired comparison of held-out outcomes on the same traces: the group's own rule
    differs significantly when its score gain's 95% interval is above zero, or when it
    saves tokens (interval above zero) without a score loss beyond ``max_loss``."""
    gain = mean_ci(own.held_out_score - shared.held_out_score[rows], rate=False)
    saving = mean_ci(shared.held_out_cost[rows] - own.held_out_cost, rate=False)
    differs = gain.low > 0 or (saving.low > 0 and gain.mean >= -max_loss)
    return GroupVerdict(group, len(rows), gain, saving, differs,
                        mean_ci(shared.held_out_score[rows]), mean_ci(shared.held_out_cost[rows]))
