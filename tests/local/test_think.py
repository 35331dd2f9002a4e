"""The ``<think>`` splitter and the prompting conventions (pure, no model)."""

from __future__ import annotations

import pytest

from thinkstop.proxy.upstreams.local.think import (
    PROMPTED_SYSTEM,
    ThinkSplitter,
    close_text,
    detect_thinking,
    message_text,
    prompted_messages,
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


def test_detect_thinking_from_the_chat_template() -> None:
    qwen3_like = "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
    r1_like = "{{ content.split('</think>')[-1] }}"
    assert detect_thinking(qwen3_like) == "native"
    assert detect_thinking(r1_like) == "native"
    assert detect_thinking("<|im_start|>{{ m.content }}<|im_end|>") == "prompted"
    assert detect_thinking(None) == "prompted"


def test_close_text_puts_the_tag_on_its_own_line() -> None:
    assert close_text("so 4", "</think>") == "\n</think>"
    assert close_text("so 4\n", "</think>") == "</think>"
    assert close_text("", "</think>") == "</think>"


def test_prompted_messages_merge_the_clients_system_turn() -> None:
    merged = prompted_messages(
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    )
    assert merged == [
        {"role": "system", "content": PROMPTED_SYSTEM + "\n\nBe terse."},
        {"role": "user", "content": "hi"},
    ]
    added = prompted_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert added[0]["content"] == PROMPTED_SYSTEM
    assert added[1] == {"role": "user", "content": "hi"}


def test_message_text_keeps_only_text_parts() -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "b"},
    ]
    assert message_text(parts) == "ab"
    assert message_text(None) == ""


def test_a_repeated_close_tag_in_the_answer_is_dropped() -> None:
    reasoning, content, _ = split(["so 3", "</think>", "\n3 apples", "\n</", "think", ">"])
    assert (reasoning, content) == ("so 3", "3 apples\n")
    _, content, _ = split(["x</think>a <b", " c"])
    assert content == "a <b c"
