"""The prompting conventions of local models (pure, no model)."""

from __future__ import annotations

from thinkstop.proxy.upstreams.local.prompted import (
    PROMPTED_SYSTEM,
    detect_thinking,
    prompted_messages,
)


def test_detect_thinking_from_the_chat_template() -> None:
    qwen3_like = "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
    r1_like = "{{ content.split('</think>')[-1] }}"
    assert detect_thinking(qwen3_like) == "native"
    assert detect_thinking(r1_like) == "native"
    assert detect_thinking("<|im_start|>{{ m.content }}<|im_end|>") == "prompted"
    assert detect_thinking(None) == "prompted"


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
