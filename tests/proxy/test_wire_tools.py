"""Tool calls and the answer's logprobs in the wire formats, against canned bytes
(httpx.MockTransport): how the adapters read them, and what they send."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.proxy.test_adapters_mock import FINISH, REQUEST, chat, delta, events, sse
from thinkstop.proxy.upstreams.base import ChatRequest, ToolCallDelta
from thinkstop.proxy.upstreams.raw_completion import RawCompletionUpstream, opens_reasoning

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


def entry(token: str, logprob: float = -0.5) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": []}


async def test_tool_call_pieces_become_tool_call_events_after_the_text() -> None:
    body = sse(delta(reasoning_content="think "), delta(content="Let me <"),
               delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "f", "arguments": ""}}]),
               delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]),
               delta(tool_calls=[{"index": 0, "function": {"arguments": " 1}"}}]),
               {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    got = await events(chat(lambda r: httpx.Response(200, content=body)))
    kinds = [e.kind for e in got]
    # the held-back "<" (a tag could be forming) is released before the call
    assert kinds == ["reasoning", "content", "content", "tool_call", "tool_call", "tool_call",
                     "finish"]
    assert "".join(e.text for e in got if e.kind == "content") == "Let me <"
    calls = [e.tool_call for e in got if e.tool_call is not None]
    assert calls[0] == ToolCallDelta(0, "call_1", "f", "")
    assert [c.arguments for c in calls[1:]] == ['{"a":', " 1}"]
    assert got[-1].finish_reason == "tool_calls"


async def test_logprobs_of_reasoning_tokens_are_dropped_and_the_answers_kept() -> None:
    body = sse({"choices": [{"index": 0, "delta": {"content": "<think>so"},
                             "logprobs": {"content": [entry("<think>"), entry("so")]}}]},
               {"choices": [{"index": 0, "delta": {"content": " two</think>It"},
                             "logprobs": {"content": [entry(" two"), entry("</think>"),
                                                      entry("It")]}}]},
               {"choices": [{"index": 0, "delta": {"content": " is 2"},
                             "logprobs": {"content": [entry(" is"), entry(" 2")]}}]},
               FINISH)
    got = await events(chat(lambda r: httpx.Response(200, content=body)))
    answer = [e for e in got if e.kind == "content"]
    tokens = [t["token"] for e in answer for t in e.logprobs or ()]
    assert "".join(e.text for e in answer) == "It is 2"
    assert tokens == ["It", " is", " 2"]


async def test_the_main_call_carries_tools_and_a_probe_cannot_call_them() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body.get("stream"):
            return httpx.Response(200, content=sse(delta(content="ok"), FINISH))
        return httpx.Response(200, json={"choices": [{"message": {"content": "2"}}]})

    upstream = chat(handler)
    request = ChatRequest("m", REQUEST.messages, {"tools": TOOLS, "tool_choice": "required",
                                                  "parallel_tool_calls": False})
    stream = upstream.stream(request)
    _ = [e async for e in stream]
    await upstream.probe(request, "so", 8)
    continued = upstream.continue_answer(request, "so", "reask")
    _ = [e async for e in continued]
    await upstream.aclose()
    main, probe, continuation = seen
    assert main["tools"] == TOOLS and main["tool_choice"] == "required"
    assert probe["tools"] == TOOLS and probe["tool_choice"] == "none"
    assert "parallel_tool_calls" not in probe
    assert continuation["tools"] == TOOLS and continuation["tool_choice"] == "required"


async def test_a_continuation_that_cannot_carry_tools_fails_instead_of_dropping_them() -> None:
    upstream = chat(lambda r: httpx.Response(200, content=sse(delta(content="x"), FINISH)))
    request = ChatRequest("m", REQUEST.messages, {"tools": TOOLS})
    stream = upstream.continue_answer(request, "so", "prefill")
    try:
        got = [e async for e in stream]
    except Exception as exc:
        assert "cannot carry tools" in str(exc)
    else:
        raise AssertionError(f"expected a failure, got {got}")
    finally:
        await upstream.aclose()


async def test_raw_completion_relays_completions_logprobs_as_chat_entries() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        chunks = [{"choices": [{"index": 0, "text": t, "logprobs": {
            "tokens": [t], "token_logprobs": [-0.1], "top_logprobs": [{t: -0.1, "x": -3.0}]},
            "finish_reason": None}]} for t in ("so", "\n</think>\n\n", "Two", ".")]
        return httpx.Response(200, content=sse(*chunks, {"choices": [
            {"index": 0, "text": "", "finish_reason": "stop"}]}))

    upstream = RawCompletionUpstream("m", "m", api_base="http://upstream/v1",
                                     transport=httpx.MockTransport(handler))
    stream = upstream.stream(ChatRequest("m", REQUEST.messages,
                                         {"logprobs": True, "top_logprobs": 2}))
    got = [e async for e in stream]
    await upstream.aclose()
    assert sent[0]["logprobs"] == 2 and "top_logprobs" not in sent[0]
    entries = [t for e in got if e.kind == "content" for t in e.logprobs or ()]
    assert [t["token"] for t in entries] == ["Two", "."]
    assert entries[0]["top_logprobs"][1] == {"token": "x", "logprob": -3.0,
                                             "bytes": [120]}


def test_a_prompt_opens_reasoning_when_a_think_block_is_left_open() -> None:
    assert opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert opens_reasoning("<think>a</think> then <think>b")
    assert not opens_reasoning("<think>a</think>answer")
    assert not opens_reasoning("Once upon a time")


async def test_a_clients_own_prompt_is_sent_as_it_is() -> None:
    prompts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        prompts.append(json.loads(request.content)["prompt"])
        return httpx.Response(200, content=sse({"choices": [
            {"index": 0, "text": "x", "finish_reason": "stop"}]}))

    upstream = RawCompletionUpstream("m", "m", api_base="http://upstream/v1",
                                     transport=httpx.MockTransport(handler))
    request = ChatRequest("m", [], {"prompt": "<think>\n"})
    _ = [e async for e in upstream.stream(request)]
    _ = [e async for e in upstream.continue_answer(request, "so", "raw")]
    assert upstream.count_prompt_tokens(request) == upstream.count_tokens("<think>\n")
    await upstream.aclose()
    assert prompts == ["<think>\n", "<think>\nso\n</think>\n\n"]
