"""Units of the drop-in surface: which strategies carry tools, what passes through, the
cap on a continuation, merging runs, keep-alive, the Responses translation, event order
and store, and the spec checker itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from tests.fakes import Script
from tests.fakes.memory_upstream import MemoryUpstream
from tests.proxy.openai_spec import Reply, require_spec, violations
from thinkstop.proxy.engine.continuation import capped
from thinkstop.proxy.engine.run import Delta
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.http.fan_in import Ended, Item, fan_in, run_all
from thinkstop.proxy.http.request_checks import continuation_for, passthrough_reason
from thinkstop.proxy.http.responses_events import ResponseWriter
from thinkstop.proxy.http.responses_request import (
    ResponsesRequest,
    chat_messages,
    chat_params,
)
from thinkstop.proxy.http.responses_store import ResponseStore, Stored
from thinkstop.proxy.http.sse import KEEPALIVE, with_keepalive
from thinkstop.proxy.upstreams.base import ChatRequest, Continuation, ToolCallDelta
from thinkstop.proxy.upstreams.strategies import STRATEGIES, carrying_tools, get_strategy


# -- strategies and what the loop follows -----------------------------------------------------
def test_every_strategy_says_whether_it_carries_tools() -> None:
    assert {name: s.tools for name, s in STRATEGIES.items()} == {
        "raw": False, "prefix": False, "prefill": False, "reask": True}
    assert carrying_tools(("prefill", "reask")) == ("reask",)
    tools_wording = get_strategy("reask").messages_for([], "so", tools=True)
    plain = get_strategy("reask").messages_for([], "so", tools=False)
    assert "call a tool" in tools_wording[-1]["content"]
    assert "call a tool" not in plain[-1]["content"]


@pytest.mark.parametrize(("offered", "configured", "tools", "expected"), [
    (("prefill", "reask"), "prefill", True, ("reask", ("reask",))),
    (("prefill", "reask"), "prefill", False, ("prefill", ("prefill", "reask"))),
    (("reask", "prefill"), "reask", True, ("reask", ("reask",))),
    ((), None, True, (None, ())),  # hidden reasoning: no continuation, budget only
])
def test_continuation_for_a_request_with_tools(
    offered: tuple[Continuation, ...], configured: Continuation | None, tools: bool,
    expected: tuple[Continuation | None, tuple[Continuation, ...]]
) -> None:
    upstream = MemoryUpstream(Script(), continuations=offered)
    assert continuation_for("m", upstream, configured, tools=tools) == expected


def test_an_upstream_with_no_tool_carrying_continuation_refuses_tools() -> None:
    upstream = MemoryUpstream(Script(), continuations=("raw",))
    with pytest.raises(ProxyError) as info:
        continuation_for("raw", upstream, "raw", tools=True)
    assert info.value.status == 400 and info.value.param == "tools"


@pytest.mark.parametrize(("params", "says"), [
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "custom"),
    ({"modalities": ["text", "audio"]}, "audio"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, None),
    ({}, None),
])
def test_what_the_loop_cannot_follow_is_passed_through(params: dict[str, Any],
                                                       says: str | None) -> None:
    why = passthrough_reason(params)
    assert (why is None) == (says is None)
    if says is not None:
        assert why is not None and says in why


def test_a_continuation_asks_for_only_what_is_left() -> None:
    request = ChatRequest("m", [], {"max_completion_tokens": 300, "temperature": 0})
    assert capped(request, 40).params == {"max_completion_tokens": 40, "temperature": 0}
    assert capped(ChatRequest("m", [], {}), 40).params == {"max_tokens": 40}
    both = capped(ChatRequest("m", [], {"max_tokens": 9, "max_completion_tokens": 9}), 4)
    assert both.params == {"max_tokens": 4, "max_completion_tokens": 4}
    assert capped(request, None) is request


# -- several runs, keep-alive ---------------------------------------------------------------
async def _items(values: list[str], delay: float) -> AsyncGenerator[str, None]:
    for value in values:
        await asyncio.sleep(delay)
        yield value


async def test_fan_in_interleaves_streams_and_ends_each() -> None:
    got = [item async for item in fan_in([_items(["a", "b"], 0.01), _items(["x"], 0.005)])]
    assert Item(1, "x") in got and Ended(0) in got and Ended(1) in got
    assert [i.value for i in got if isinstance(i, Item) and i.index == 0] == ["a", "b"]


async def test_fan_in_stops_every_stream_when_one_fails() -> None:
    closed: list[int] = []

    async def slow() -> AsyncGenerator[str, None]:
        try:
            await asyncio.sleep(10)
            yield "never"
        finally:
            closed.append(0)

    async def failing() -> AsyncGenerator[str, None]:
        yield "one"
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        async for _ in fan_in([slow(), failing()]):
            pass
    assert closed == [0]


async def test_run_all_cancels_the_rest_on_a_failure() -> None:
    cancelled = asyncio.Event()

    async def waits() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def fails() -> int:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await run_all([waits(), fails()])
    assert cancelled.is_set()
    assert await run_all([asyncio.sleep(0, result=2), asyncio.sleep(0, result=3)]) == [2, 3]


async def test_keepalive_fills_silences_and_closes_its_source() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncGenerator[bytes, None]:
        try:
            yield b"a"
            await asyncio.sleep(0.12)
            yield b"b"
            await asyncio.sleep(10)
            yield b"never"
        finally:
            closed.set()

    out: list[bytes] = []
    stream = with_keepalive(source(), 0.03)
    async for item in stream:
        out.append(item)
        if item == b"b":
            break
    await stream.aclose()
    assert out[0] == b"a" and out[-1] == b"b"
    assert 2 <= out.count(KEEPALIVE) <= 5
    assert closed.is_set()


# -- the Responses API ----------------------------------------------------------------------
def test_a_responses_request_as_chat_messages_and_params() -> None:
    request = ResponsesRequest.model_validate({
        "model": "m", "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Look at "},
                {"type": "input_image", "image_url": "https://x/img.png"}]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "two"}]}],
        "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}],
        "tool_choice": {"type": "function", "name": "f"},
        "max_output_tokens": 64, "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}},
        "include": ["message.output_text.logprobs"]})
    assert chat_messages(request, []) == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "Look at "},
                                     {"type": "image_url",
                                      "image_url": {"url": "https://x/img.png"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"}]
    assert chat_params(request) == {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {},
                                                    "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "max_completion_tokens": 64, "reasoning_effort": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
        "logprobs": True, "top_logprobs": 0}


def test_the_writer_opens_grows_and_closes_items_in_order() -> None:
    writer = ResponseWriter(ResponsesRequest(model="m", input="x"), show_reasoning=True)
    kinds = [k for k, _ in writer.opening()]
    for delta in (Delta("reasoning", "so"), Delta("content", "It"),
                  Delta("tool_call", "", tool_call=ToolCallDelta(0, "c", "f", "")),
                  Delta("tool_call", "", tool_call=ToolCallDelta(0, arguments="{}"))):
        kinds += [k for k, _ in writer.add(delta)]
    closing = writer.closing("completed", {"prompt_tokens": 1, "completion_tokens": 2,
                                           "total_tokens": 3,
                                           "completion_tokens_details": {
                                               "reasoning_tokens": 1}}, {"halted": False})
    kinds += [k for k, _ in closing]
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    final = closing[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message",
                                                          "function_call"]
    assert final["output"][2]["call_id"] == "c" and final["output"][2]["arguments"] == "{}"


def test_hidden_reasoning_makes_no_reasoning_item() -> None:
    writer = ResponseWriter(ResponsesRequest(model="m", input="x"), show_reasoning=False)
    assert writer.add(Delta("reasoning", "so")) == []
    (kind, _), *_ = writer.add(Delta("content", "It"))
    assert kind == "response.output_item.added"
    assert [item.kind for item in writer.items] == ["message"]


def test_the_store_keeps_the_most_recent_and_says_why_it_lost_one() -> None:
    store = ResponseStore(2)
    for name in ("a", "b", "c"):
        store.put(name, Stored("m", [{"role": "user", "content": name}], {"id": name}))
    assert store.get("a") is None and store.get("c") is not None
    with pytest.raises(ProxyError) as info:
        store.previous("a")
    assert info.value.status == 400 and "not shared between replicas" in info.value.message
    off = ResponseStore(0)
    off.put("x", Stored("m", [], {}))
    assert off.get("x") is None


# -- the spec checker ------------------------------------------------------------------------
def _reply(path: str, body: bytes, *, status: int = 200,
           content_type: str = "application/json") -> Reply:
    return Reply("POST", path, status, content_type, bytearray(body), complete=True)


def test_the_spec_check_catches_what_the_spec_forbids() -> None:
    spec = require_spec()
    good = (b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index"'
            b':0,"message":{"role":"assistant","content":"hi","refusal":null},"logprobs":null,'
            b'"finish_reason":"stop"}]}')
    assert violations(spec, [_reply("/v1/chat/completions", good)]) == []
    bad = good.replace(b'"stop"', b'"halted"').replace(b',"refusal":null', b"")
    problems = violations(spec, [_reply("/v1/chat/completions", bad)])
    assert any("finish_reason" in p for p in problems)
    assert any("'refusal' is a required property" in p for p in problems)
    error = _reply("/v1/chat/completions", b'{"error":{"message":"m","type":"t"}}', status=400)
    assert any("'param' is a required property" in p for p in violations(spec, [error]))
    stream = _reply("/v1/responses", b'event: response.nope\ndata: {"type":"response.nope"}\n\n',
                    content_type="text/event-stream")
    assert violations(spec, [stream])  # an event the spec does not know


def test_nullable_schemas_accept_null() -> None:
    spec = require_spec()
    # ChatCompletionStreamResponse's choice logprobs is an OpenAPI `nullable: true` object
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": None,
                          "finish_reason": None}]}
    assert spec.errors("CreateChatCompletionStreamResponse", chunk) == []


# -- the edge's wiring of per-model options ---------------------------------------------------
async def test_probe_model_answers_the_probes_of_the_model_it_serves() -> None:
    import httpx

    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app

    config = parse_config({"model_list": [
        {"model_name": "main", "litellm_params": {"model": "x/main"},
         "thinkstop": {"probe_model": "small", "chunk_tokens": 4}},
        {"model_name": "small", "litellm_params": {"model": "x/small"}}]}, environ={})
    main, small = MemoryUpstream(Script.overthinking(total=40, settle_at=8, token_delay=0)), (
        MemoryUpstream(Script()))
    with open("/dev/null", "w") as null:  # noqa: ASYNC230 - a local file, opened once
        app = create_app(config, {"main": main, "small": small}, log_stream=null)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as http:
            reply = await http.post("/v1/chat/completions", json={
                "model": "main", "messages": [{"role": "user", "content": "q"}]})
    assert reply.status_code == 200
    assert small.probe_calls > 0 and main.probe_calls == 0
    assert reply.json()["thinkstop"]["probe_model"] == "small"  # its configured name
