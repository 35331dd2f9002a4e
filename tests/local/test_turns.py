"""Turn logic over a fake engine: event split, exact token counts, forced close of an
unclosed ``<think>``, stopping, and transcript reuse for probes."""

from __future__ import annotations

from proxy.local.engine import Prompt
from proxy.local.turns import Transcript, answer_events, chat_events
from proxy.upstreams.base import StreamEvent

from .fakes import FakeEngine, as_engine, script

PROMPT = Prompt(text="P", tokens=(1, 2, 3), opened=True)


def never() -> bool:
    return False


def run(text: str, prompt: Prompt = PROMPT, max_tokens: int = 1000) -> tuple[
    list[StreamEvent], Transcript, FakeEngine
]:
    fake = FakeEngine()
    transcript = Transcript(prompt)
    events = list(
        chat_events(as_engine(fake), prompt, transcript, script(text), max_tokens, never)
    )
    return events, transcript, fake


def joined(events: list[StreamEvent], kind: str) -> str:
    return "".join(e.text for e in events if e.kind == kind)


def test_stream_splits_reasoning_and_answer_with_exact_counts() -> None:
    events, _, _ = run("one\ntwo</think>\n\nIt is 2.\0")
    assert joined(events, "reasoning") == "one\ntwo"
    assert joined(events, "content") == "It is 2."
    finish, usage = events[-2], events[-1]
    assert finish.kind == "finish" and finish.finish_reason == "stop"
    assert usage.kind == "usage" and usage.usage is not None
    generated = len("one\ntwo</think>\n\nIt is 2.")
    assert usage.usage.completion_tokens == generated
    assert usage.usage.reasoning_tokens == len("one\ntwo</think>")
    assert usage.usage.prompt_tokens == len(PROMPT.tokens)
    assert sum(e.tokens or 0 for e in events if e.kind in ("reasoning", "content")) == generated
    kinds = [e.kind for e in events]
    assert kinds.index("content") > max(i for i, k in enumerate(kinds) if k == "reasoning")


def test_a_turn_ended_inside_think_is_closed_and_answered() -> None:
    events, transcript, _ = run("no end tag\0 42\0")
    assert joined(events, "reasoning") == "no end tag"
    assert joined(events, "content") == "42"
    usage = events[-1].usage
    assert usage is not None
    forced = len("\n</think>\n\n")
    assert usage.prompt_tokens == len(PROMPT.tokens) + forced
    assert usage.completion_tokens == len("no end tag") + len(" 42")
    assert transcript.text == "no end tag\n</think>\n\n 42"


def test_max_tokens_ends_with_length() -> None:
    events, _, fake = run("abcdefghij", max_tokens=4)
    assert joined(events, "reasoning") == "abcd"
    assert events[-2].finish_reason == "length"
    # the prompt once, then one token per step; the last sampled token is never evaluated
    assert fake.stats.evaluated == len(PROMPT.tokens) + 3


def test_should_stop_ends_the_stream_silently() -> None:
    fake = FakeEngine()
    calls = iter([False, False, True])
    events = chat_events(
        as_engine(fake), PROMPT, Transcript(PROMPT), script("abcdef"), 100,
        lambda: next(calls),
    )
    assert [e.text for e in events] == ["a", "b"]


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


def test_continuation_counts_only_evaluated_prompt_tokens() -> None:
    fake = FakeEngine()
    context = [1, 2, 3, *[ord(c) for c in "so 2"]]
    fake.evaluate(context)  # the main stream left this in the cache
    before = fake.stats.evaluated
    events = list(
        answer_events(as_engine(fake), context, "so 2", script("\n2\0"), 50, never)
    )
    assert joined(events, "content") == "2"
    usage = events[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == len("\n</think>\n\n")
    assert usage.completion_tokens == 2
    # the closing tag, then each answer token to sample the next (the end token is not run)
    assert fake.stats.evaluated - before == len("\n</think>\n\n") + 2
