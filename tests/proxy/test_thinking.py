"""The one ``<think>`` splitter every adapter uses (remote chat and raw completion, the
embedded model), the delta normaliser, how reasoning is closed, and message text."""

from __future__ import annotations

import pytest

from thinkstop.proxy.upstreams import chat_base, raw_completion
from thinkstop.proxy.upstreams.local import turns
from thinkstop.proxy.upstreams.thinking import (
    ThinkSplitter,
    closing,
    message_text,
    split_delta,
)


def split(pieces: list[str], start: str = "reasoning") -> tuple[str, str, list[tuple[str, str]]]:
    splitter = ThinkSplitter(start)  # type: ignore[arg-type]
    segments = [seg for piece in pieces for seg in splitter.feed(piece)] + splitter.flush()
    reasoning = "".join(t for k, t in segments if k == "reasoning")
    content = "".join(t for k, t in segments if k == "content")
    return reasoning, content, segments


@pytest.mark.parametrize(
    "pieces",
    [
        ["2 + 2 = 4.", "</think>", "\n\n", "4"],
        ["2 + 2 = 4.</", "think", ">", "\n", "\n4"],  # the tag split over tokens
        list("2 + 2 = 4.</think>\n\n4"),  # one character at a time
        ["2 + 2 = 4.</think>\n\n4"],
    ],
)
def test_reasoning_and_content_split_at_the_close_tag(pieces: list[str]) -> None:
    reasoning, content, _ = split(pieces)
    assert (reasoning, content) == ("2 + 2 = 4.", "4")


def test_a_partial_tag_is_held_back_until_decided() -> None:
    splitter = ThinkSplitter("reasoning")
    assert splitter.feed("a </thi") == [("reasoning", "a ")]
    assert splitter.feed("s is not a tag") == [("reasoning", "</this is not a tag")]


def test_a_lone_less_than_sign_is_released_by_the_next_piece() -> None:
    _, _, segments = split(["x <", " y"])
    assert segments == [("reasoning", "x "), ("reasoning", "< y")]


def test_unclosed_reasoning_is_flushed_as_reasoning() -> None:
    reasoning, content, _ = split(["still thinking </th"])
    assert (reasoning, content) == ("still thinking </th", "")


def test_close_from_outside_switches_to_content() -> None:
    splitter = ThinkSplitter("reasoning")
    splitter.feed("thinking <")
    assert splitter.close() == [("reasoning", "<")]
    assert splitter.feed(" 42") == [("content", "42")]


def test_native_model_opens_its_own_block() -> None:
    splitter = ThinkSplitter("undecided")
    assert splitter.feed("\n<thi") == []
    assert splitter.feed("nk>\nhmm") == [("reasoning", "\nhmm")]
    assert splitter.consumed == len("\n<think>")
    assert splitter.feed("</think>ok") == [("reasoning", ""), ("content", "ok")]


def test_native_model_that_skips_thinking_writes_content() -> None:
    reasoning, content, _ = split(["The answer", " is 4."], start="undecided")
    assert (reasoning, content) == ("", "The answer is 4.")


def test_content_start_state_strips_leading_blank() -> None:
    reasoning, content, _ = split(["\n\n", " 7", "\n"], start="content")
    assert (reasoning, content) == ("", "7\n")


def test_a_repeated_close_tag_in_the_answer_is_dropped() -> None:
    reasoning, content, _ = split(["so 3", "</think>", "\n3 apples", "\n</", "think", ">"])
    assert (reasoning, content) == ("so 3", "3 apples\n")
    _, content, _ = split(["x</think>a <b", " c"])
    assert content == "a <b c"


def merged(parts: list[str], start: str = "undecided") -> list[tuple[str, str]]:
    splitter = ThinkSplitter(start)  # type: ignore[arg-type]
    out = [p for part in parts for p in splitter.feed(part)] + splitter.flush()
    joined: list[tuple[str, str]] = []
    for kind, text in out:
        if joined and joined[-1][0] == kind:
            joined[-1] = (kind, joined[-1][1] + text)
        else:
            joined.append((kind, text))
    return joined


@pytest.mark.parametrize("parts", [
    ["<think>abc</think>\n\nAnswer"],
    ["<th", "ink>a", "bc</th", "ink>", "\n\nAns", "wer"],
    ["\n<think>", "abc", "</think>Answer"],
])
def test_think_tags_split_across_chunks(parts: list[str]) -> None:
    assert merged(parts) == [("reasoning", "abc"), ("content", "Answer")]


@pytest.mark.parametrize("parts", [["A <think>x</think>"], ["A", " <think>x</think>"],
                                   ["A <thi", "nk>x</th", "ink>"]])
def test_a_think_block_after_the_answer_began_stays_answer_without_its_tags(
    parts: list[str]
) -> None:
    # Once in one chunk this routed "x" into the reasoning; in two it did not.
    assert merged(parts) == [("content", "A x")]


def test_text_without_tags_and_a_raw_completion_inside_the_block() -> None:
    assert merged(["no tags <b> here"]) == [("content", "no tags <b> here")]
    assert merged(["abc\n</thi", "nk>\n\nx"], "reasoning") == [
        ("reasoning", "abc\n"), ("content", "x")]


def test_every_adapter_uses_the_same_splitter() -> None:
    assert chat_base.ThinkSplitter is raw_completion.ThinkSplitter is turns.ThinkSplitter
    assert ThinkSplitter is chat_base.ThinkSplitter


def test_split_delta_reads_both_reasoning_fields() -> None:
    splitter = ThinkSplitter()
    assert split_delta({"reasoning_content": "r"}, splitter) == [("reasoning", "r")]
    assert split_delta({"reasoning": "s", "content": "c"}, splitter) == [
        ("reasoning", "s"), ("content", "c")]


def test_closing_puts_the_tag_on_its_own_line() -> None:
    assert closing("so 4") == "\n</think>\n\n"
    assert closing("so 4\n") == "</think>\n\n"
    assert closing("") == "</think>\n\n"


def test_message_text_keeps_only_text_parts() -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "b"},
    ]
    assert message_text(parts) == "ab"
    assert message_text(None) == ""
    # the Responses API's parts are text too (the two flatteners once disagreed here)
    assert message_text([{"type": "input_text", "text": "x"},
                         {"type": "output_text", "text": "y"}]) == "xy"
