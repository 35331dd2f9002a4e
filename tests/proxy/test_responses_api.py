"""The Responses API (``POST /v1/responses``) end to end with the real openai SDK: the same
halting loop as chat, the Responses event stream, function tools, and
``previous_response_id`` from the replica's bounded store."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam

from tests.fakes import FakeReasoningServer, Script, ScriptedToolCall, words
from tests.proxy.conftest import Proxy

TOOLS: list[FunctionToolParam] = [{
    "type": "function", "name": "lookup", "description": "Look a number up", "strict": False,
    "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}}}]
NEVER_HALT = {"thinkstop": {"policy": "consistency:window=1000"}}


def tool_script(total: int = 2000) -> Script:
    script = Script.overthinking(total=total)
    script.tool_calls = [ScriptedToolCall("lookup")]
    return script


async def test_a_whole_response_is_halted_and_answers_in_a_message(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=2000))
    response = await client.responses.create(
        model="chat", instructions="Answer briefly.", input="How many fruits?",
        max_output_tokens=400, reasoning={"effort": "low"}, temperature=0.3)
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == "Final answer: 42."  # the model's own continuation
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    reasoning = response.output[0].model_dump()
    assert reasoning["content"][0]["type"] == "reasoning_text"
    assert reasoning["content"][0]["text"].startswith(" so we count")
    decision = response.model_dump()["thinkstop"]
    assert decision["halted"] is True and decision["reason"] == "plateau"
    assert response.usage is not None
    assert response.usage.output_tokens <= 400  # max_output_tokens caps everything billed
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    main = fake.stats.of_kind("main")[0].body
    assert main["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert main["messages"][1] == {"role": "user", "content": "How many fruits?"}
    assert main["max_completion_tokens"] == 400 and main["reasoning_effort"] == "low"
    assert main["temperature"] == 0.3
    assert fake.wait(lambda s: s.streams_closed_early == 1)


async def test_a_streamed_response_emits_the_responses_events(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=2000))
    stream = await client.responses.create(model="chat", input="How many fruits?",
                                           stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds.index("response.reasoning_text.delta") < kinds.index(
        "response.output_text.delta")
    for opened in ("response.output_item.added", "response.content_part.added"):
        assert kinds.count(opened) == 2  # the reasoning item, then the message
    assert kinds.count("response.output_item.done") == 2
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Final answer: 42."
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text
    final = events[-1].model_dump()["response"]
    assert final["status"] == "completed" and final["thinkstop"]["halted"] is True
    assert final["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_function_tools_the_model_calls_after_a_halt(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, stream: bool
) -> None:
    fake.reset(tool_script())
    if stream:
        events = [e async for e in await client.responses.create(
            model="chat", input="Look it up.", tools=TOOLS, stream=True)]
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        done = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert done.name == "lookup"
        response = events[-1].model_dump()["response"]
    else:
        response = (await client.responses.create(
            model="chat", input="Look it up.", tools=TOOLS)).model_dump()
    call = response["output"][-1]
    assert call["type"] == "function_call" and call["name"] == "lookup"
    assert call["call_id"].startswith("call_") and call["status"] == "completed"
    assert json.loads(call["arguments"]) == {"answer": "42"}  # made after the halt
    assert response["thinkstop"]["halted"] is True
    sent = fake.stats.of_kind("continuation")[0].body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look a number up", "strict": False,
        "parameters": TOOLS[0]["parameters"]}}]


async def test_input_items_and_previous_response_id_continue_a_conversation(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(tool_script())
    first = await client.responses.create(model="chat", input="Look it up.", tools=TOOLS,
                                          instructions="Use tools.")
    call = first.output[-1].model_dump()
    fake.reset(tool_script())
    second = await client.responses.create(
        model="chat", previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call["call_id"],
                "output": "42 fruits"}])
    assert second.output_text == "Final answer: 42."
    assert second.previous_response_id == first.id
    sent = fake.stats.of_kind("main")[0].body["messages"]
    # instructions are not carried over; the earlier turns and the tool result are
    assert sent == [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call["call_id"], "type": "function",
            "function": {"name": "lookup", "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["call_id"], "content": "42 fruits"}]
    # the same conversation as explicit items (a reasoning item is dropped)
    fake.reset(tool_script())
    third = await client.responses.create(model="chat", tools=TOOLS, input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Look it up."}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": call["call_id"], "name": "lookup",
         "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "42 fruits"}])
    assert third.output_text == "Final answer: 42."
    explicit = fake.stats.of_kind("main")[0].body["messages"]
    assert explicit[0] == {"role": "user", "content": [{"type": "text", "text": "Look it up."}]}
    assert explicit[1:] == sent[1:]


async def test_unknown_or_unstored_previous_responses_are_a_clear_400(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(40)))
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="chat", input="x", previous_response_id="resp_x")
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "previous_response_id"
    assert "not shared between replicas" in info.value.body["message"]
    unstored = await client.responses.create(model="chat", input="x", store=False,
                                             extra_body=NEVER_HALT)
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model="chat", input="y",
                                      previous_response_id=unstored.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)
    stored = await client.responses.create(model="chat", input="x", extra_body=NEVER_HALT)
    again = await client.responses.retrieve(stored.id)
    assert again.id == stored.id and again.output_text == "The answer is 42."


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"background": True}, "background"),
    ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
])
async def test_what_cannot_be_served_is_a_400_naming_the_field(
    proxy: Proxy, fake: FakeReasoningServer, body: dict[str, Any], param: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{proxy.url}/responses",
                                json={"model": "chat", "input": "x", **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
    assert fake.stats.requests == []


async def test_an_output_cut_by_max_output_tokens_is_incomplete(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(400), token_delay=0.001))
    response = await client.responses.create(model="chat", input="x", max_output_tokens=50,
                                             extra_body=NEVER_HALT)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens <= 50
