"""A seeded synthetic trace set in which answers settle early and later drift.

It imitates the inverse-scaling pattern reported by Gema et al. (arXiv 2507.14417) and seen
on the embedded 1.5B model (on misleading-math items a probe at 0 reasoning tokens was
right on 6 of 12, the model's own final answers on 1 of 12): the model explores, settles
on the right answer with rising confidence, and then, the longer it thinks, often talks
itself into a distractor-driven wrong answer. Each trace has three phases:

1. exploring (until ``settle``): answers wander among candidates, mostly with low
   probability but now and then confidently wrong (probe calibration is poor);
2. settled (until ``drift``): the expected answer, high probability, rare blips;
3. drifting (only for drifting items): a hedged transition, then a wrong answer that the
   model grows confident in; its natural final answer is that wrong one.

Hard items settle late and do not drift, so a policy that always stops early loses them.
Nothing here is measured data: it is a documented test bed for halting policies, committed
as ``benchmarks/traces/drift.jsonl`` (``python -m thinkstop.benchmarks.drift_traces`` rewrites it).
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from thinkstop.scheduler.trace import Natural, Step, Trace

DEFAULT_PATH = Path(__file__).parent / "traces" / "drift.jsonl"


def _alternatives(rng: random.Random, answer: str | None, logprob: float, pool: list[str]) -> (
    dict[str, float] | None
):
    if answer is None:
        return None
    rest = 1.0 - math.exp(logprob)
    others = [a for a in pool if a != answer]
    rng.shuffle(others)
    alts = {answer: round(logprob, 4)}
    share = rest * 0.7
    for other in others[:2]:
        alts[other] = round(math.log(max(share, 1e-6)), 4)
        share *= 0.3
    return alts


def make_trace(rng: random.Random, index: int, chunk_tokens: int = 64) -> Trace:
    expected = str(rng.randint(1, 9))
    wrongs = [str(v) for v in rng.sample([v for v in range(0, 13) if str(v) != expected], 3)]
    pool = [expected, *wrongs]
    level = rng.random()
    hard = level < 0.2
    drifts = not hard and rng.random() < 0.65
    natural_tokens = int(min(6000, max(700, rng.lognormvariate(math.log(2600), 0.35))))
    if hard:
        settle = rng.randint(1500, 2600)
        natural_tokens = max(natural_tokens, settle + rng.randint(300, 1200))
    elif level < 0.5:
        settle = rng.randint(600, 1500)
    else:
        settle = rng.randint(100, 600)
    drift = rng.randint(settle + 400, settle + 1600) if drifts else natural_tokens + 1
    if drifts and drift + 400 > natural_tokens:
        natural_tokens = drift + rng.randint(400, 1500)
    wrong = wrongs[0]

    steps: list[Step] = []
    for tokens in range(chunk_tokens, natural_tokens + 1, chunk_tokens):
        hedged = False
        answer: str | None
        if tokens < settle:
            answer = rng.choice([*pool, None])
            # Early guesses are sometimes confidently wrong (the 1.5B model's probes at p >= 0.9
            # were right 8 times in 19).
            overconfident = rng.random() < 0.25
            logprob = -rng.uniform(0.02, 0.2) if overconfident else -rng.uniform(0.4, 1.8)
            hedged = rng.random() < 0.3
        elif tokens < drift:
            blip = rng.random() < 0.04
            answer = rng.choice(wrongs) if blip else expected
            logprob = -rng.uniform(0.6, 1.4) if blip else -rng.uniform(0.02, 0.25)
        elif tokens < drift + 320:
            answer = rng.choice([expected, wrong, wrong, None])
            logprob = -rng.uniform(0.5, 1.5)
            hedged = rng.random() < 0.6
        else:
            answer = wrong
            logprob = -rng.uniform(0.05, 0.4)
        steps.append(
            Step(
                tokens=tokens,
                answer=answer,
                logprob=round(logprob, 4) if answer is not None else None,
                alternatives=_alternatives(rng, answer, logprob, pool),
                probe_tokens=rng.randint(4, 8),
                hedged=hedged,
            )
        )
    natural_answer = wrong if drifts else expected
    return Trace(
        id=f"drift-{index:04d}",
        task="synthetic_drift",
        expected=expected,
        chunk_tokens=chunk_tokens,
        steps=tuple(steps),
        natural=Natural(tokens=natural_tokens, answer=natural_answer),
        meta={"hard": hard, "drifts": drifts, "settle": settle},
    )


def make_poorly_calibrated_trace(rng: random.Random, index: int,
                                 chunk_tokens: int = 32) -> Trace:
    """Like the embedded 1.5B model: the right answer early and stable, probabilities that
    never say so (p 0.05-0.3, no alternatives), and a late drift to a wrong answer in
    most runs. A policy that waits for confidence spends every token into the drift."""
    expected = str(rng.randint(1, 9))
    wrong = str(rng.choice([v for v in range(0, 13) if str(v) != expected]))
    settle = rng.randint(1, 4) * chunk_tokens
    drifts = rng.random() < 0.8
    natural_tokens = rng.randint(900, 1600)
    drift = rng.randint(settle + 500, natural_tokens - 100) if drifts else natural_tokens + 1
    steps = []
    for tokens in range(chunk_tokens, natural_tokens + 1, chunk_tokens):
        if tokens < settle:
            answer: str | None = rng.choice([expected, wrong, None])
        elif tokens < drift:
            answer = expected if rng.random() > 0.03 else wrong
        else:
            answer = wrong
        logprob = math.log(rng.uniform(0.05, 0.3))
        steps.append(Step(tokens=tokens, answer=answer,
                          logprob=round(logprob, 4) if answer is not None else None,
                          probe_tokens=rng.randint(3, 6)))
    return Trace(id=f"poor-{index:04d}", task="synthetic_poor_calibration",
                 expected=expected, chunk_tokens=chunk_tokens, steps=tuple(steps),
                 natural=Natural(tokens=natural_tokens, answer=wrong if drifts else expected),
                 meta={"drifts": drifts, "settle": settle})


def make_traces(n: int, seed: int, chunk_tokens: int = 64,
                calibration: str = "good") -> list[Trace]:
    """``calibration``: ``good`` (the committed drift set) or ``poor`` (see
    :func:`make_poorly_calibrated_trace`)."""
    rng = random.Random(seed)
    if calibration == "poor":
        return [make_poorly_calibrated_trace(rng, i, chunk_tokens) for i in range(n)]
    return [make_trace(rng, i, chunk_tokens) for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the synthetic drift trace set.")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    traces = make_traces(args.n, args.seed)
    args.out.write_text("".join(t.dumps() + "\n" for t in traces), encoding="utf-8")
    print(f"wrote {len(traces)} traces to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
