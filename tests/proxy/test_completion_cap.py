"""The client's ``max_tokens`` / ``max_completion_tokens`` caps every completion token the
request is billed for: reasoning, probes and the continuation after a halt together (past
it only the tokens the upstream had in flight when the proxy closed its stream).

Before, a halt plus continuation billed 323 completion tokens for ``max_tokens: 300``:
the continuation was sent the client's whole ``max_tokens`` again.
"""

from __future__ import annotations

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeReasoningServer, Script

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How many fruits?"}]
# A long answer: 150 tokens after the halt, more than what the cap leaves for it.
LONG = "Final answer: {answer}. " + " ".join(["and"] * 147)


def long_answer_script() -> Script:
    script = Script.overthinking(total=2000)
    script.final_template = LONG
    return script


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_a_halt_and_its_continuation_fit_in_the_clients_max_tokens(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, field: str
) -> None:
    fake.reset(long_answer_script())
    reply = await client.chat.completions.create(model="chat", messages=PROMPT,
                                                 **{field: 300})  # type: ignore[call-overload]
    decision = reply.model_dump()["thinkstop"]
    assert decision["halted"] is True and decision["reason"] == "plateau"
    assert reply.usage is not None
    assert 280 <= reply.usage.completion_tokens <= 300  # not a token more
    (continuation,) = fake.stats.of_kind("continuation")
    before = (decision["reasoning_tokens"] + decision["reasoning_tokens_discarded"]
              + decision["probe_tokens"])
    # only what was left: a probe still running at the halt is reserved at its limit
    assert 300 - before - 16 * 2 <= continuation.body[field] <= 300 - before
    assert fake.stats.of_kind("main")[0].body[field] == 300
    assert reply.choices[0].finish_reason == "length"  # the answer was cut, as upstream
    assert (reply.choices[0].message.content or "").startswith("Final answer: 42.")


async def test_a_stream_whose_reasoning_spends_the_cap_ends_for_length(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(long_answer_script())
    stream = await client.chat.completions.create(
        model="chat", messages=PROMPT, max_tokens=100, stream=True,
        stream_options={"include_usage": True},
        extra_body={"thinkstop": {"policy": "consistency:window=1000"}})
    chunks = [chunk.model_dump() async for chunk in stream]
    usage, decision = chunks[-1]["usage"], chunks[-1]["thinkstop"]
    # reasoning and probes stop at the cap; what the upstream had already generated past
    # that point (in flight when the stream was closed) is billed too, and reported
    assert usage["completion_tokens"] - decision["reasoning_tokens_discarded"] <= 100
    assert decision["reason"] == "completion_cap" and decision["strategy"] is None
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length"
    assert fake.stats.continuation_requests == 0  # no answer fits: none was asked for


async def test_without_a_cap_nothing_changes(client: openai.AsyncOpenAI,
                                             fake: FakeReasoningServer) -> None:
    fake.reset(long_answer_script())
    reply = await client.chat.completions.create(model="chat", messages=PROMPT)
    assert reply.choices[0].finish_reason == "stop"
    assert "max_tokens" not in fake.stats.of_kind("continuation")[0].body
