"""Hypothesis strategies for traces and policy specs."""

from hypothesis import strategies as st

from thinkstop.scheduler.answers import answers_match
from thinkstop.scheduler.trace import Natural, Step, Trace

ANSWERS = st.sampled_from(["2", "two", "3", "(A)", "B", None])


@st.composite
def steps(draw: st.DrawFn, max_steps: int = 24) -> tuple[Step, ...]:
    n = draw(st.integers(0, max_steps))
    gaps = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    tokens = 0
    out = []
    for gap in gaps:
        tokens += gap
        answer = draw(ANSWERS)
        logprob = draw(st.one_of(st.none(), st.floats(-6.0, 0.0)))
        alts = draw(st.one_of(st.none(), st.dictionaries(
            st.sampled_from(["2", "3", "A"]), st.floats(-8.0, 0.0), max_size=3)))
        out.append(Step(tokens=tokens, answer=answer, logprob=logprob, alternatives=alts or None,
                        probe_tokens=draw(st.integers(0, 9)), hedged=draw(st.booleans()),
                        cue=draw(st.booleans()),
                        repetition=draw(st.one_of(st.none(), st.floats(0.0, 1.0)))))
    return tuple(out)


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    s = draw(steps())
    last = s[-1].tokens if s else 0
    natural = Natural(tokens=last + draw(st.integers(0, 300)), answer=draw(ANSWERS))
    return Trace(id="t", task="x", expected=draw(st.sampled_from(["2", "3", "A", None])),
                 chunk_tokens=64, steps=s, natural=natural)


@st.composite
def specs(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["fixed", "consistency", "confidence", "plateau", "sprt"]))
    params: list[str] = []
    if name == "fixed":
        params.append(f"budget={draw(st.integers(0, 3000))}")
    if name in {"consistency", "confidence", "plateau"} and draw(st.booleans()):
        params.append(f"window={draw(st.integers(1, 5))}")
    if name == "confidence":
        params.append(f"threshold={draw(st.floats(0.05, 1.0)):.3f}")
    if name == "plateau":
        params.append(f"epsilon={draw(st.floats(0.01, 1.0)):.3f}")
        params.append(f"min_confidence={draw(st.floats(0.0, 1.0)):.3f}")
        params.append(f"metric={draw(st.sampled_from(['js', 'tv']))}")
    if name == "sprt":
        params.append(f"alpha={draw(st.floats(0.01, 0.5)):.3f}")
    lo = draw(st.integers(0, 1500))
    if draw(st.booleans()):
        params.append(f"min_tokens={lo}")
    if draw(st.booleans()):
        params.append(f"max_tokens={lo + draw(st.integers(0, 3000))}")
    if draw(st.booleans()):
        params.append(f"max_probes={draw(st.integers(0, 30))}")
    if draw(st.booleans()):
        params.append(f"loop={draw(st.floats(0.05, 1.0)):.3f}")
    return f"{name}:{','.join(params)}" if params else name


def correct(answer: str | None, trace: Trace) -> bool:
    return answers_match(answer, trace.expected)
