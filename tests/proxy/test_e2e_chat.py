"""End to end: the real openai SDK -> thinkstop (uvicorn) -> the fake reasoning server."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeReasoningServer, Script, words

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How many fruits are in the basket? Count precisely."}
]
NEVER_HALT = {"policy": "consistency:window=1000"}


async def stream_all(client: openai.AsyncOpenAI, model: str, **kwargs: Any
                     ) -> tuple[str, str, list[dict[str, Any]]]:
    stream = await client.chat.completions.create(model=model, messages=PROMPT, stream=True,
                                                  **kwargs)
    reasoning, content, chunks = [], [], []
    async for chunk in stream:
        data = chunk.model_dump()
        chunks.append(data)
        for choice in data["choices"]:
            reasoning.append(choice["delta"].get("reasoning_content") or "")
            content.append(choice["delta"].get("content") or "")
    return "".join(reasoning), "".join(content), chunks


def check_accounting(decision: dict[str, Any], usage: dict[str, Any]) -> None:
    detail = usage["completion_tokens_details"]["reasoning_tokens"]
    # Reasoning that arrived after the halt point (timing-dependent) is paid for, so it
    # is in the usage, and reported apart in the decision.
    assert detail == (decision["reasoning_tokens"] + decision["reasoning_tokens_discarded"]
                      + decision["probe_tokens"])
    assert usage["completion_tokens"] == detail + decision["answer_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("model", ["chat", "raw"])
async def test_overthinking_stream_gets_the_early_right_answer(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, model: str
) -> None:
    fake.reset(Script.overthinking(right="42", wrong="41", total=2000, drift_at=1200))
    reasoning, content, chunks = await stream_all(
        client, model, stream_options={"include_usage": True})

    assert content == "Final answer: 42."  # the model's own continuation, not the probe's
    assert fake.wait(lambda s: s.streams_closed_early == 1)
    stats = fake.stats
    assert stats.sent_reasoning_tokens < 500  # closed well before the 2,000-token end
    assert stats.continuation_requests == 1
    last = chunks[-1]
    decision, usage = last["thinkstop"], last["usage"]
    assert decision["halted"] and decision["reason"] == "plateau"
    assert decision["strategy"] == ("raw" if model == "raw" else "reask")
    # Honest counts: everything streamed was counted, and every probe token too.
    assert reasoning == "".join(fake.script.reasoning[: decision["reasoning_tokens"]])
    assert stats.sent_reasoning_tokens - 16 <= decision["reasoning_tokens"]
    assert decision["reasoning_tokens"] <= stats.sent_reasoning_tokens
    assert decision["probes"] == stats.probe_requests >= 3
    assert decision["probe_tokens"] == stats.probe_completion_tokens > 0
    assert usage["prompt_tokens"] > stats.probe_prompt_tokens
    check_accounting(decision, usage)
    # The continuation saw exactly the reasoning the client saw.
    assert stats.of_kind("continuation")[0].reasoning_tokens == decision["reasoning_tokens"]
    # Only the last chunk carries the decision.
    assert all("thinkstop" not in c for c in chunks[:-1])


async def test_overthinking_whole_response_raw_adapter(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=2000))
    reply = await client.chat.completions.create(model="raw", messages=PROMPT)
    data = reply.model_dump()
    assert data["choices"][0]["message"]["content"] == "Final answer: 42."
    assert data["choices"][0]["message"]["reasoning_content"].startswith(" so we count")
    assert data["thinkstop"]["halted"] is True
    assert fake.wait(lambda s: s.streams_closed_early == 1)
    assert fake.stats.sent_reasoning_tokens < 500
    check_accounting(data["thinkstop"], data["usage"])
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None


@pytest.mark.parametrize("model", ["chat", "raw"])
async def test_natural_finish_passes_the_models_own_answer(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, model: str
) -> None:
    fake.reset(Script(reasoning=words(100)))
    reasoning, content, chunks = await stream_all(
        client, model, stream_options={"include_usage": True},
        extra_body={"thinkstop": NEVER_HALT})
    assert content == "The answer is 42."
    assert reasoning.rstrip() == fake.script.text  # raw: the newline before </think> stays
    decision = chunks[-1]["thinkstop"]
    assert decision["halted"] is False and decision["reason"] == "natural"
    assert decision["strategy"] is None
    assert decision["policy"] == "consistency:window=1000"  # the override was applied
    assert decision["reasoning_tokens"] == (101 if model == "raw" else 100)
    assert fake.stats.continuation_requests == 0
    assert fake.stats.streams_completed == 1
    check_accounting(decision, chunks[-1]["usage"])


async def test_enabled_false_passes_through(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(150)))
    reply = await client.chat.completions.create(
        model="chat", messages=PROMPT, extra_body={"thinkstop": {"enabled": False}})
    data = reply.model_dump()
    assert data["choices"][0]["message"]["content"] == "The answer is 42."
    assert data["choices"][0]["message"]["reasoning_content"] == fake.script.text
    assert data["thinkstop"]["enabled"] is False and data["thinkstop"]["reason"] == "disabled"
    assert fake.stats.probe_requests == 0
    assert data["usage"]["completion_tokens"] == 155  # the upstream's own count
    _, content, _ = await stream_all(client, "chat", extra_body={"thinkstop": {"enabled": False}})
    assert content == "The answer is 42."
    assert fake.stats.probe_requests == 0


async def test_stream_reasoning_false_hides_reasoning(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(100)))
    override = {"thinkstop": {"stream_reasoning": False, **NEVER_HALT}}
    reasoning, content, chunks = await stream_all(client, "chat", extra_body=override)
    assert reasoning == "" and content == "The answer is 42."
    assert chunks[-1]["thinkstop"]["reasoning_tokens"] == 100  # still counted
    reply = await client.chat.completions.create(model="chat", messages=PROMPT,
                                                 extra_body=override)
    assert "reasoning_content" not in reply.choices[0].message.model_dump()


async def test_max_tokens_override_cuts_without_probes(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(400), token_delay=0.001))
    reply = await client.chat.completions.create(
        model="chat", messages=PROMPT,
        extra_body={"thinkstop": {"policy": "fixed", "max_tokens": 50}})
    data = reply.model_dump()
    assert data["thinkstop"]["halted"] and data["thinkstop"]["reason"] == "max_tokens"
    used, snapped = data["thinkstop"]["reasoning_tokens"], data["thinkstop"]["cut_snapped_tokens"]
    # the cut lands at 50, then snaps back over a word it may have split
    assert 50 <= used + snapped <= 52 and snapped <= 1
    assert data["choices"][0]["message"]["content"] == "Final answer: 42."
    assert fake.stats.probe_requests == 0
    assert fake.wait(lambda s: s.streams_closed_early == 1)


async def test_prefill_continuation_shape(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=600, token_delay=0.001))
    reply = await client.chat.completions.create(model="prefill", messages=PROMPT)
    assert reply.choices[0].message.content == "Final answer: 42."
    body = fake.stats.of_kind("continuation")[0].body
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    last = body["messages"][-1]
    assert last["role"] == "assistant" and last["content"].rstrip().endswith("</think>")
    probe = fake.stats.of_kind("probe")[0].body
    assert probe["messages"][-1]["content"].endswith("<answer>")
    assert probe["logprobs"] is True and probe["stop"] == ["</answer>"]


@pytest.mark.parametrize("field", ["reasoning", "think_tags"])
async def test_reasoning_shapes_are_normalised(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, field: Any
) -> None:
    fake.reset(Script(reasoning=words(60), reasoning_field=field))
    reasoning, content, _ = await stream_all(client, "chat",
                                             extra_body={"thinkstop": {"enabled": False}})
    assert reasoning.strip() == fake.script.text.strip()
    assert content == "The answer is 42."


async def test_hidden_reasoning_gets_budget_guard_rails(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(300), hide_reasoning=True))
    reply = await client.chat.completions.create(model="hidden", messages=PROMPT)
    data = reply.model_dump()
    assert data["thinkstop"]["reason"] == "hidden_reasoning"
    assert data["thinkstop"]["halted"] is False
    assert data["thinkstop"]["reasoning_tokens"] == 300  # from the upstream's usage
    assert fake.stats.probe_requests == 0
    sent = fake.stats.of_kind("main")[0].body
    assert sent["max_completion_tokens"] == 1000 + 4096
    assert sent["reasoning_effort"] == "low"


async def test_litellm_adapter_halts_too(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=1000, token_delay=0.01))
    _, content, chunks = await stream_all(client, "lite", stream_options={"include_usage": True})
    assert content == "Final answer: 42."
    assert chunks[-1]["thinkstop"]["halted"] is True
    assert fake.wait(lambda s: s.streams_closed_early == 1)
    assert fake.stats.sent_reasoning_tokens < 500
    assert chunks[-1]["thinkstop"]["probe_tokens"] == fake.stats.probe_completion_tokens
