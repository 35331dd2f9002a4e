"""``n > 1`` (independent halting runs, one per choice) and the client's own ``logprobs``,
end to end with the openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeReasoningServer, Script, words

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How many fruits?"}]
NEVER_HALT = {"thinkstop": {"policy": "consistency:window=1000"}}


async def test_n_choices_are_independent_halting_runs_with_summed_usage(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=2000))
    reply = await client.chat.completions.create(model="chat", messages=PROMPT, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content == "Final answer: 42." for c in reply.choices)
    assert fake.stats.main_streams == 3 and fake.stats.continuation_requests == 3
    decision = reply.model_dump()["thinkstop"]
    assert decision["n"] == 3 and decision["halted"] is True
    assert [d["index"] for d in decision["choices"]] == [0, 1, 2]
    assert all(d["halted"] and d["reason"] == "plateau" for d in decision["choices"])
    assert reply.usage is not None
    spent = sum(d["reasoning_tokens"] + d["reasoning_tokens_discarded"] + d["probe_tokens"]
                + d["answer_tokens"] for d in decision["choices"])
    assert reply.usage.completion_tokens == spent  # the three runs, summed
    assert fake.wait(lambda s: s.streams_closed_early == 3)


async def test_n_streamed_choices_interleave_by_index(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(60), token_delay=0.002))
    stream = await client.chat.completions.create(
        model="chat", messages=PROMPT, n=2, stream=True,
        stream_options={"include_usage": True}, extra_body=NEVER_HALT)
    chunks = [chunk.model_dump() async for chunk in stream]
    text: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            text[choice["index"]] += choice["delta"].get("content") or ""
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert text == {0: "The answer is 42.", 1: "The answer is 42."}
    assert finishes == {0: "stop", 1: "stop"}
    indexes = [c["choices"][0]["index"] for c in chunks if c["choices"]]
    first_one = indexes.index(1)
    assert 0 in indexes[first_one:]  # both streams were live at once
    last = chunks[-1]
    assert last["choices"] == [] and last["thinkstop"]["n"] == 2
    per_choice = [d["reasoning_tokens"] + d["probe_tokens"] + d["answer_tokens"]
                  for d in last["thinkstop"]["choices"]]
    assert per_choice[0] >= 60 + 5 and per_choice[1] >= 60 + 5
    assert last["usage"]["completion_tokens"] == sum(per_choice)


def tokens_of(logprobs: Any) -> list[str]:
    return [entry.token for entry in logprobs.content] if logprobs else []


@pytest.mark.parametrize("model", ["chat", "raw"])
async def test_logprobs_are_relayed_for_the_answer_tokens_only(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, model: str
) -> None:
    # The fake sends logprobs for every token, reasoning included (as a server without a
    # reasoning parser does): the client gets those of the answer it receives.
    fake.reset(Script(reasoning=words(80)))
    reply = await client.chat.completions.create(model=model, messages=PROMPT, logprobs=True,
                                                 top_logprobs=2, extra_body=NEVER_HALT)
    logprobs = reply.choices[0].logprobs
    assert "".join(tokens_of(logprobs)) == reply.choices[0].message.content
    assert logprobs is not None and logprobs.refusal is None
    entry = logprobs.content[0]
    assert entry.logprob == pytest.approx(fake.script.answer_logprob)
    assert entry.top_logprobs[0].token == entry.token
    assert len(entry.top_logprobs) == 2


@pytest.mark.parametrize("model", ["chat", "raw"])
async def test_logprobs_after_a_halt_are_the_continuations(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, model: str
) -> None:
    fake.reset(Script.overthinking(total=2000))
    stream = await client.chat.completions.create(model=model, messages=PROMPT, stream=True,
                                                  logprobs=True, top_logprobs=1)
    content, tokens = "", []
    async for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            tokens += tokens_of(choice.logprobs)
            if choice.delta.model_dump().get("reasoning_content"):
                assert choice.logprobs is None  # none for reasoning tokens
    assert content == "Final answer: 42." and "".join(tokens) == content
    assert fake.stats.of_kind("continuation")[0].body["logprobs"] is not None


async def test_no_logprobs_unless_asked(client: openai.AsyncOpenAI,
                                        fake: FakeReasoningServer) -> None:
    fake.reset(Script(reasoning=words(40)))
    reply = await client.chat.completions.create(model="chat", messages=PROMPT,
                                                 extra_body=NEVER_HALT)
    assert reply.choices[0].logprobs is None
    assert "logprobs" not in fake.stats.of_kind("main")[0].body
