"""Turn logic over a fake engine: event split, exact token counts, forced close of an
unclosed ``<think>``, the banned end token at the start of an answer, pre-emption by a
probe, transcript reuse, and the probe's answer and log probabilities."""

from __future__ import annotations

import math
import threading

from thinkstop.proxy.upstreams.base import StreamEvent
from thinkstop.proxy.upstreams.local.engine import GREEDY, Prompt
from thinkstop.proxy.upstreams.local.turns import (
    Preemption,
    Transcript,
    answer_turn,
    chat_turn,
    run_probe,
    soft_answer_turn,
)

from .fakes import EOG, FakeEngine, as_engine, candidates

PROMPT = Prompt(text="P", tokens=(1, 2, 3), opened=True)


def never() -> bool:
    return False


def run(script: str, prompt: Prompt = PROMPT, max_tokens: int = 1000,
        preempt: Preemption | None = None) -> tuple[list[StreamEvent], Transcript, FakeEngine]:
    fake = FakeEngine(script)
    transcript = Transcript(prompt)
    events: list[StreamEvent] = []
    chat_turn(as_engine(fake), prompt, transcript, max_tokens=max_tokens, sampling=GREEDY,
              should_stop=never, preempt=preempt or Preemption(), emit=events.append)
    return events, transcript, fake


def joined(events: list[StreamEvent], kind: str) -> str:
    return "".join(e.text for e in events if e.kind == kind)


def test_stream_splits_reasoning_and_answer_with_exact_counts() -> None:
    events, _, fake = run("one\ntwo</think>\n\nIt is 2.\0")
    assert joined(events, "reasoning") == "one\ntwo"
    assert joined(events, "content") == "It is 2."
    finish, usage = events[-2], events[-1]
    assert finish.kind == "finish" and finish.finish_reason == "stop"
    assert usage.kind == "usage" and usage.usage is not None
    generated = len("one\ntwo</think>\n\nIt is 2.")
    assert usage.usage.completion_tokens == generated
    assert usage.usage.reasoning_tokens == len("one\ntwo</think>")
    # the whole prompt once, then whatever later calls had to run again: every token the
    # model processed is counted
    assert usage.usage.prompt_tokens == fake.stats.evaluated
    assert fake.stats.evaluated - len(PROMPT.tokens) == len(fake.calls) - 1
    assert sum(e.tokens or 0 for e in events if e.kind in ("reasoning", "content")) == generated
    kinds = [e.kind for e in events]
    assert kinds.index("content") > max(i for i, k in enumerate(kinds) if k == "reasoning")


def test_a_turn_ended_inside_think_is_closed_and_answered() -> None:
    events, transcript, fake = run("no end tag\0 42\0")
    assert joined(events, "reasoning") == "no end tag"
    assert joined(events, "content") == "42"
    usage = events[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == fake.stats.evaluated
    forced = len("\n</think>\n\n")
    assert usage.prompt_tokens >= len(PROMPT.tokens) + forced
    assert usage.completion_tokens == len("no end tag") + len(" 42")
    assert transcript.text == "no end tag\n</think>\n\n 42"


def test_the_first_answer_token_may_not_end_the_turn() -> None:
    events, _, fake = run("hm</think>\0\0A\0")
    assert joined(events, "content") == "A"
    banned = [c for c in fake.calls if c.ban]
    assert len(banned) == 1 and banned[0].ban == (EOG,) and banned[0].max_tokens == 1


def test_max_tokens_ends_with_length() -> None:
    events, _, _ = run("abcdefghij", max_tokens=4)
    assert joined(events, "reasoning") == "abcd"
    assert events[-2].finish_reason == "length"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 4


def test_should_stop_ends_the_stream_silently() -> None:
    fake = FakeEngine("abcdef")
    checks = iter([False, False, False, True])
    events: list[StreamEvent] = []
    chat_turn(as_engine(fake), PROMPT, Transcript(PROMPT), max_tokens=100, sampling=GREEDY,
              should_stop=lambda: next(checks, True), preempt=Preemption(), emit=events.append)
    assert [e.kind for e in events] == ["reasoning", "reasoning"]
    assert joined(events, "reasoning") == "ab"


def test_a_waiting_probe_pauses_the_stream_which_resumes_where_it_stopped() -> None:
    preempt = Preemption()
    entered = threading.Event()
    seen: list[StreamEvent] = []

    def emit(event: StreamEvent) -> None:
        seen.append(event)
        if event.kind == "reasoning" and len(seen) == 3 and not entered.is_set():
            entered.set()
            hold = preempt.probing()
            hold.__enter__()  # a probe is now waiting; it is done 50 ms later
            threading.Timer(0.05, hold.__exit__, (None, None, None)).start()

    fake = FakeEngine("abcdef</think>ok\0")
    chat_turn(as_engine(fake), PROMPT, Transcript(PROMPT), max_tokens=100, sampling=GREEDY,
              should_stop=never, preempt=preempt, emit=emit)
    assert joined(seen, "reasoning") == "abcdef" and joined(seen, "content") == "ok"
    first, second = fake.calls[0], fake.calls[1]
    assert first.result is not None and first.result.finish == "stopped"
    # resumed from the tokens generated so far, re-running only the last one
    assert second.tokens == [1, 2, 3, *map(ord, "abc")]
    assert second.result is not None and second.result.evaluated == 1


def test_native_open_tag_is_not_reasoning_and_transcript_knows_it() -> None:
    prompt = Prompt(text="P", tokens=(1, 2, 3), opened=False)
    events, transcript, fake = run("<think>\nhm</think>ok\0", prompt=prompt)
    assert joined(events, "reasoning") == "\nhm"
    assert joined(events, "content") == "ok"
    # the reasoning as the client saw it maps back to exactly the generated tokens
    context = transcript.context(as_engine(fake), "\nhm")
    assert context == [1, 2, 3, *[ord(c) for c in "<think>\nhm"]]


def test_transcript_reuses_generated_tokens_where_the_text_agrees() -> None:
    t = Transcript(PROMPT)
    for token, text in [(500, "ab"), (501, "c"), (502, "de")]:
        t.add(token, text, clean=True)
    fake = as_engine(FakeEngine())
    assert t.context(fake, "abcde") == [1, 2, 3, 500, 501, 502]
    assert t.context(fake, "abc") == [1, 2, 3, 500, 501]
    # diverging text: generated tokens up to the last boundary before it, then re-tokenised
    assert t.context(fake, "abX") == [1, 2, 3, 500, ord("X")]
    assert t.context(fake, "aZ") == [1, 2, 3, ord("a"), ord("Z")]


def test_transcript_never_splits_a_character_across_tokens() -> None:
    t = Transcript(PROMPT)
    t.add(600, "", clean=False)  # first byte of a two-byte character
    t.add(601, "é", clean=True)
    assert t.context(as_engine(FakeEngine()), "é") == [1, 2, 3, 600, 601]
    assert t.context(as_engine(FakeEngine()), "x") == [1, 2, 3, ord("x")]


def test_continuation_counts_its_whole_prompt_and_what_the_cache_held() -> None:
    fake = FakeEngine("\n2\0")
    context = [1, 2, 3, *[ord(c) for c in "so 2"]]
    fake.held = list(context)  # the main stream left this in the cache
    events: list[StreamEvent] = []
    answer_turn(as_engine(fake), context, "so 2", max_tokens=50, sampling=GREEDY,
                should_stop=never, preempt=Preemption(), emit=events.append)
    assert joined(events, "content") == "2"
    usage = events[-1].usage
    assert usage is not None
    # the whole prompt (context + closing tag) once, then one token re-run to resume; the
    # prompt and the reasoning came from the cache
    tag = len("\n</think>\n\n")
    assert usage.prompt_tokens == len(context) + tag + 1
    assert usage.cached_prompt_tokens == len(context)
    assert usage.completion_tokens == 2


def test_probe_sums_every_answer_token_renormalised_without_the_end_token() -> None:
    top = candidates(**{"end": math.log(0.2), "3": -2.0})
    fake = FakeEngine(" 2\nmore", logprob=-0.5, top=top)
    result = run_probe(as_engine(fake), [1, 2, 3], "so 2", max_tokens=8, top_k=5)
    assert result.text == "2"
    shift = -math.log(0.8)  # ending was banned at the blank and the first answer token
    assert result.logprob is not None
    assert math.isclose(result.logprob, 2 * (-0.5 + shift))
    assert result.alternatives is not None
    assert math.isclose(result.alternatives["3"], (-0.5 + shift) + (-2.0 + shift))
    # phase 1 banned the end token until the answer began, phase 2 ran free
    assert [c.ban for c in fake.calls] == [(EOG,), ()]
    assert result.usage.completion_tokens == 3  # " ", "2", and the newline that ended it
    evaluated = sum(c.result.evaluated for c in fake.calls if c.result is not None)
    first = fake.calls[0].result
    assert first is not None
    assert result.usage.cached_prompt_tokens == first.reused
    assert result.usage.prompt_tokens == evaluated + first.reused


def test_probe_stops_at_the_end_of_the_turn_and_at_its_token_limit() -> None:
    ended = run_probe(as_engine(FakeEngine(" 7\0junk")), [1], "r", max_tokens=8)
    assert ended.text == "7" and ended.usage.completion_tokens == 2
    cut = run_probe(as_engine(FakeEngine(" 12345")), [1], "r", max_tokens=3)
    assert cut.text == "12" and cut.usage.completion_tokens == 3
    blank = run_probe(as_engine(FakeEngine("\0\0   ")), [1], "r", max_tokens=3)
    assert blank.text == "" and blank.logprob is None


def soft(script: str, grace: int) -> tuple[list[StreamEvent], FakeEngine]:
    fake = FakeEngine(script)
    events: list[StreamEvent] = []
    soft_answer_turn(as_engine(fake), [1, 2, 3], "so", grace_tokens=grace, max_tokens=50,
                     sampling=GREEDY, should_stop=never, preempt=Preemption(),
                     emit=events.append)
    return events, fake


def test_a_soft_halt_winds_up_within_its_grace_then_answers() -> None:
    # the fake writes "abcde" (5 grace tokens, one per character), is cut there, its
    # reasoning closed for it, and then writes "7" as its answer
    events, fake = soft("abcde7\0", grace=5)
    reasoning = joined(events, "reasoning")
    assert reasoning.startswith("\n\nI have enough to answer now.\n")
    assert reasoning.endswith("abcde")
    assert joined(events, "content") == "7"
    # the cue and the closing tag are prompt tokens, not generated ones
    tag = [ord(ch) for ch in "\n</think>\n\n"]
    assert any(c.tokens[-len(tag):] == tag for c in fake.calls)


def test_a_soft_halt_lets_the_model_close_its_reasoning_itself() -> None:
    events, _ = soft("ok.</think>42\0", grace=50)
    assert joined(events, "reasoning").endswith("ok.")
    assert joined(events, "content") == "42"
