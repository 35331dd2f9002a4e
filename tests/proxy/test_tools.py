"""Tool calling through the halting loop, end to end: the real openai SDK -> thinkstop
(uvicorn) -> the fake reasoning server, which emits tool calls in the OpenAI wire format.

The scripted model is right early and drifts wrong late (``Script.overthinking``), and
its tool call carries the answer it holds: a call made after a halt says 42, the one it
makes after all its reasoning says 41. So the call the client gets shows whose it is.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.fakes import FakeReasoningServer, Script, ScriptedToolCall, words

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How many fruits are in the basket? Look it up."}]
TOOLS: list[ChatCompletionToolParam] = [{"type": "function", "function": {
    "name": "lookup", "description": "Look a number up",
    "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                   "required": ["answer"]}}}]
NEVER_HALT = {"thinkstop": {"policy": "consistency:window=1000"}}


def tool_script(total: int = 2000) -> Script:
    script = Script.overthinking(total=total)
    script.tool_calls = [ScriptedToolCall("lookup")]
    return script


async def stream_chunks(client: openai.AsyncOpenAI, **kwargs: Any) -> list[dict[str, Any]]:
    stream = await client.chat.completions.create(model=kwargs.pop("model", "chat"),
                                                  messages=kwargs.pop("messages", PROMPT),
                                                  stream=True, **kwargs)
    return [chunk.model_dump() async for chunk in stream]


def tool_pieces(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [piece for c in chunks for choice in c["choices"]
            for piece in choice["delta"].get("tool_calls") or ()]


async def test_a_halted_stream_relays_the_models_own_tool_call_in_pieces(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(tool_script())
    chunks = await stream_chunks(client, tools=TOOLS, stream_options={"include_usage": True})

    pieces = tool_pieces(chunks)
    first, rest = pieces[0], pieces[1:]
    assert first["index"] == 0 and first["type"] == "function"
    assert first["id"].startswith("call_") and first["function"]["name"] == "lookup"
    assert len(rest) >= 2 and all(p["id"] is None and p["function"]["name"] is None
                                  for p in rest)  # arguments in pieces, after the first
    arguments = "".join(p["function"]["arguments"] or "" for p in pieces)
    assert json.loads(arguments) == {"answer": "42"}  # the call made after the halt
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    decision = chunks[-1]["thinkstop"]
    assert decision["halted"] is True and decision["reason"] == "plateau"
    assert decision["strategy"] == "reask"
    # the model's own call, from the continuation, not a probe's or a made-up one
    assert fake.stats.tool_calls_sent == [("continuation", "lookup", arguments)]
    assert fake.wait(lambda s: s.streams_closed_early == 1)
    continuation = fake.stats.of_kind("continuation")[0].body
    assert continuation["tools"] == TOOLS  # the continuation carries the tools
    assert "call a tool if one is needed" in continuation["messages"][-1]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] >= decision["answer_tokens"] > 0


async def test_a_halted_whole_reply_has_message_tool_calls(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(tool_script())
    reply = await client.chat.completions.create(model="chat", messages=PROMPT, tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None and choice.message.refusal is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"answer": "42"}
    assert reply.model_dump()["thinkstop"]["halted"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_call_the_model_makes_by_itself_is_relayed(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, stream: bool
) -> None:
    fake.reset(tool_script(total=300))
    if stream:
        chunks = await stream_chunks(client, tools=TOOLS, extra_body=NEVER_HALT)
        arguments = "".join(p["function"]["arguments"] or "" for p in tool_pieces(chunks))
        name = tool_pieces(chunks)[0]["function"]["name"]
        decision = chunks[-1]["thinkstop"]
        reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or ""
                            for c in chunks if c["choices"])
    else:
        reply = await client.chat.completions.create(model="chat", messages=PROMPT,
                                                     tools=TOOLS, extra_body=NEVER_HALT)
        assert reply.choices[0].message.tool_calls is not None
        call = reply.choices[0].message.tool_calls[0]
        name, arguments = call.function.name, call.function.arguments
        decision = reply.model_dump()["thinkstop"]
        reasoning = reply.model_dump()["choices"][0]["message"]["reasoning_content"]
    assert name == "lookup" and json.loads(arguments) == {"answer": "42"}
    assert decision["halted"] is False and decision["reason"] == "natural"
    assert reasoning == fake.script.text  # the whole reasoning, then the model's call
    assert fake.stats.continuation_requests == 0
    assert fake.stats.tool_calls_sent == [("main", "lookup", arguments)]


async def test_after_all_its_reasoning_the_model_calls_with_its_drifted_answer(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    # The control for the tests above: left alone, the same model's call says 41.
    fake.reset(tool_script(total=1400))
    reply = await client.chat.completions.create(model="chat", messages=PROMPT, tools=TOOLS,
                                                 extra_body=NEVER_HALT)
    assert reply.choices[0].message.tool_calls is not None
    call = reply.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"answer": "41"}


async def test_probes_answer_in_text_with_the_tools_declared_but_not_callable(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(tool_script())
    await client.chat.completions.create(model="chat", messages=PROMPT, tools=TOOLS,
                                         tool_choice="auto", parallel_tool_calls=False)
    probes = fake.stats.of_kind("probe")
    assert probes
    for probe in probes:
        # tools declared (the prompt starts as the main call's, for the prefix cache),
        # tool_choice "none": the probe answers in text
        assert probe.body["tools"] == TOOLS and probe.body["tool_choice"] == "none"
        assert "parallel_tool_calls" not in probe.body
    assert [kind for kind, _, _ in fake.stats.tool_calls_sent] == ["continuation"]
    main = fake.stats.of_kind("main")[0].body
    assert main["tool_choice"] == "auto" and main["parallel_tool_calls"] is False


async def test_a_multi_turn_conversation_with_tool_results_passes_through(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(tool_script())
    first = await client.chat.completions.create(model="chat", messages=PROMPT, tools=TOOLS)
    message = first.choices[0].message
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    history: list[ChatCompletionMessageParam] = [
        *PROMPT,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call.id, "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "There are 42 fruits."},
    ]
    fake.reset(tool_script())
    second = await client.chat.completions.create(model="chat", messages=history, tools=TOOLS)
    # with the tool's result in hand, the model answers in text
    assert second.choices[0].message.content == "Final answer: 42."
    assert second.choices[0].finish_reason == "stop"
    assert second.model_dump()["thinkstop"]["halted"] is True
    for kind in ("main", "probe", "continuation"):
        sent = fake.stats.of_kind(kind)[0].body["messages"]
        assert sent[1]["tool_calls"][0]["id"] == call.id
        assert sent[1]["tool_calls"][0]["function"]["arguments"] == call.function.arguments
        assert sent[2] == {"role": "tool", "tool_call_id": call.id,
                           "content": "There are 42 fruits."}


async def test_auto_picks_a_continuation_that_carries_tools(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    # "prefill" (hosted_vllm, continuation: prefill) continues an assistant message as
    # text, which cannot become a tool call: a request with tools gets reask instead.
    fake.reset(tool_script(total=800))
    reply = await client.chat.completions.create(model="prefill", messages=PROMPT, tools=TOOLS)
    assert reply.model_dump()["thinkstop"]["strategy"] == "reask"
    assert reply.choices[0].message.tool_calls is not None
    body = fake.stats.of_kind("continuation")[0].body
    assert body["messages"][-1]["role"] == "user" and "continue_final_message" not in body
    # ...and without tools the same model keeps its prefill continuation
    fake.reset(Script.overthinking(total=800))
    plain = await client.chat.completions.create(model="prefill", messages=PROMPT)
    assert plain.model_dump()["thinkstop"]["strategy"] == "prefill"


async def test_a_raw_completion_model_cannot_take_tools(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(20)))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="raw", messages=PROMPT, tools=TOOLS)
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "tools"
    assert info.value.body["code"] == "unsupported_parameter"
    assert fake.stats.requests == []


async def test_legacy_functions_are_passed_through_and_say_so(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(100)))
    functions = [{"name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    reply = await client.chat.completions.create(model="chat", messages=PROMPT,
                                                 functions=functions)  # type: ignore[arg-type]
    decision = reply.model_dump()["thinkstop"]
    assert decision["reason"] == "passthrough" and "functions" in decision["passthrough"]
    assert decision["halted"] is False and decision["probes"] == 0
    assert reply.choices[0].message.content == "The answer is 42."
    assert fake.stats.probe_requests == 0
    (main,) = fake.stats.of_kind("main")  # one upstream call, as the client made it
    assert main.body["functions"] == functions and main.body["stream"] is False
    chunks = await stream_chunks(client, functions=functions)
    assert chunks[-1]["thinkstop"]["reason"] == "passthrough"
    assert sum("thinkstop" in c for c in chunks) == 1
    assert all(c["choices"] for c in chunks)  # the usage chunk it asked for is not shown
