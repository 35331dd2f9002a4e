"""Probe schedules: where each one probes, that replay selects the steps the live loop
would have probed at, and the loop guard-rail."""

from __future__ import annotations

import itertools

import pytest

from thinkstop.scheduler import GuardRails, Observation, PolicySpecError, create_policy
from thinkstop.scheduler.schedule import create_schedule, select
from thinkstop.scheduler.trace import Natural, Step, Trace


def positions(spec: str, upto: int = 1000, cues: frozenset[int] = frozenset(),
              chunk: int = 32) -> list[int]:
    schedule = create_schedule(spec, chunk)
    return [t for t in range(chunk, upto + 1, chunk) if schedule.due(t, t in cues)]


def test_fixed_probes_every_n_tokens_and_defaults_to_the_chunk() -> None:
    assert positions("fixed:every=64", 320) == [64, 128, 192, 256, 320]
    assert positions("fixed", 128) == [32, 64, 96, 128]
    assert positions(None, 96) == [32, 64, 96]  # type: ignore[arg-type]


def test_geometric_gaps_grow_up_to_their_cap() -> None:
    got = positions("geometric:first=32,factor=2,max_gap=128", 800)
    gaps = [b - a for a, b in itertools.pairwise(got)]
    assert got[0] == 32 and gaps[:3] == [64, 128, 128]
    assert all(g == 128 for g in gaps[1:])


def test_transitions_probe_at_course_changes_within_their_gaps() -> None:
    cues = frozenset({64, 96, 352})
    # 64: a cue 64 after the start (>= min 32); 96: a cue, 32 later; then nothing until
    # the max gap forces one at 96 + 128 = 224, then 352 (a cue, 128 after 224).
    assert positions("transitions:min_gap=32,max_gap=128", 400, cues) == [64, 96, 224, 352]
    # a cue too soon after the last probe waits
    assert positions("transitions:min_gap=64,max_gap=512", 200,
                     frozenset({64, 96, 160})) == [64, 160]


@pytest.mark.parametrize(("spec", "message"), [
    ("sometimes", "unknown probe schedule 'sometimes'; valid schedules: fixed, geometric"),
    ("geometric:first=64,max_gap=32", "max_gap >= first"),
    ("transitions:min_gap=0", "0 < min_gap"),
    ("fixed:every=x", "every='x' is not a valid int"),
    ("fixed:often=2", "unknown parameter 'often'; valid parameters: every"),
])
def test_bad_schedules_say_what_is_valid(spec: str, message: str) -> None:
    with pytest.raises(PolicySpecError, match=message):
        create_schedule(spec)


def dense(cues: set[int], n: int = 12, chunk: int = 32) -> Trace:
    steps = tuple(Step(tokens=chunk * (i + 1), answer="2", probe_tokens=3,
                       cue=chunk * (i + 1) in cues) for i in range(n))
    return Trace(id="t", task="x", expected="2", chunk_tokens=chunk, steps=steps,
                 natural=Natural(tokens=chunk * n + 10, answer="2"))


def test_select_keeps_the_steps_a_live_run_would_have_probed() -> None:
    trace = dense({64, 96})
    assert [s.tokens for s in select(trace, create_schedule("fixed:every=96")).steps] == [
        96, 192, 288, 384]
    # a cue at a step the schedule skipped still counts at the next due step, as live
    picked = select(trace, create_schedule("transitions:min_gap=64,max_gap=256"))
    assert [s.tokens for s in picked.steps] == [64, 128, 384]  # 96 was too soon: 128
    live = create_schedule("transitions:min_gap=64,max_gap=256")
    seen, cue = [], False
    for t in range(1, 385):
        cue = cue or t in (64, 96)
        if t % 32 == 0 and live.due(t, cue):
            seen.append(t)
            cue = False
    assert seen == [s.tokens for s in picked.steps]


def test_the_loop_rail_halts_a_repeating_run_whatever_the_policy() -> None:
    policy = create_policy("consistency:window=99", GuardRails(loop=0.5))
    calm = policy.observe(Observation(tokens=64, answer="2", repetition=0.1))
    looping = policy.observe(Observation(tokens=96, answer="2", repetition=0.7))
    assert not calm.halt and looping.halt and looping.reason == "loop"
    spec = create_policy("plateau:loop=0.4")
    assert spec.rails.loop == 0.4
    with pytest.raises(PolicySpecError, match="loop must be in"):
        create_policy("plateau:loop=1.5")
