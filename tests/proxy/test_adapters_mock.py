"""The native adapters against canned wire bytes (httpx.MockTransport): the chunk shapes
and failures of OpenAI-compatible servers, with no server running. The loopback fake
server covers timing and connection behaviour; this tier covers the parsing."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from thinkstop.proxy.upstreams.base import Capabilities, ChatRequest, StreamEvent, UpstreamError
from thinkstop.proxy.upstreams.openai_chat import OpenAIChatUpstream
from thinkstop.proxy.upstreams.raw_completion import RawCompletionUpstream

REQUEST = ChatRequest("m", [{"role": "user", "content": "q"}])
Handler = Callable[[httpx.Request], httpx.Response]


def sse(*payloads: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(p)}\n\n" for p in payloads]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def delta(**fields: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 7, "completion_tokens": 5,
                    "completion_tokens_details": {"reasoning_tokens": 3}}}


def chat(handler: Handler) -> OpenAIChatUpstream:
    return OpenAIChatUpstream("m", "m", api_base="http://upstream/v1",
                              capabilities=Capabilities(continuations=("reask",), logprobs=True),
                              transport=httpx.MockTransport(handler))


async def events(upstream: OpenAIChatUpstream | RawCompletionUpstream) -> list[StreamEvent]:
    stream = upstream.stream(REQUEST)
    try:
        return [e async for e in stream]
    finally:
        await stream.aclose()
        await upstream.aclose()


async def test_reasoning_fields_and_inline_tags_become_one_event_shape() -> None:
    body = sse(delta(reasoning_content="so "), delta(reasoning="two"),
               delta(content="It is "), delta(content="<think>2</think>."), FINISH)
    got = await events(chat(lambda r: httpx.Response(200, content=body)))
    assert "".join(e.text for e in got if e.kind == "reasoning") == "so two"
    # a think block after the answer began is answer text, without its tags
    assert "".join(e.text for e in got if e.kind == "content") == "It is 2."
    usage = next(e.usage for e in got if e.kind == "usage")
    assert usage is not None and (usage.prompt_tokens, usage.reasoning_tokens) == (7, 3)


async def test_the_request_carries_the_model_and_asks_for_usage() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=sse(delta(content="ok"), FINISH))

    await events(chat(handler))
    assert seen[0]["model"] == "m" and seen[0]["stream"] is True
    assert seen[0]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("reply", "kind", "status"), [
    (httpx.Response(503, json={"error": {"message": "overloaded"}}), "status", 503),
    (httpx.Response(200, content=b"data: {not json\n\n"), "protocol", None),
    (httpx.Response(200, content=sse(delta(content="cut"), done=False)), "protocol", None),
    (httpx.Response(200, content=sse({"error": {"message": "boom"}})), "protocol", None),
])
async def test_failures_are_upstream_errors_of_the_right_kind(
    reply: httpx.Response, kind: str, status: int | None
) -> None:
    with pytest.raises(UpstreamError) as err:
        await events(chat(lambda r: reply))
    assert err.value.kind == kind and err.value.status_code == status


async def test_a_probe_reads_the_answer_and_its_logprobs() -> None:
    reply = {"choices": [{"message": {"content": "2"}, "logprobs": {"content": [
        {"token": "2", "logprob": -0.25, "top_logprobs": [
            {"token": "2", "logprob": -0.25}, {"token": "3", "logprob": -1.6}]}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 1}}
    upstream = chat(lambda r: httpx.Response(200, json=reply))
    result = await upstream.probe(REQUEST, "so 2", 8)
    await upstream.aclose()
    assert result.text == "2" and result.logprob == pytest.approx(-0.25)
    # the top candidates at the answer's first token (the sampled one included)
    assert result.alternatives == {"2": pytest.approx(-0.25), "3": pytest.approx(-1.6)}
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (20, 1)


async def test_raw_completion_opens_the_think_block_in_the_prompt() -> None:
    prompts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        prompts.append(json.loads(request.content)["prompt"])
        text = {"choices": [{"index": 0, "text": "2 </think>\n\nTwo.", "finish_reason": None}]}
        return httpx.Response(200, content=sse(text, {"choices": [
            {"index": 0, "text": "", "finish_reason": "stop"}]}))

    upstream = RawCompletionUpstream("m", "m", api_base="http://upstream/v1",
                                     transport=httpx.MockTransport(handler))
    got = await events(upstream)
    assert prompts[0].endswith("<|im_start|>assistant\n<think>\n")
    assert "".join(e.text for e in got if e.kind == "reasoning") == "2 "
    assert "".join(e.text for e in got if e.kind == "content") == "Two."
