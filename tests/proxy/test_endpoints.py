"""The rest of the OpenAI surface, and what every reply carries: ``GET /v1/models/{id}``,
``POST /v1/completions``, OpenAI-shaped 404s and 400s, ``x-request-id``, CORS, and SSE
keep-alive comments."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import FakeReasoningServer, Script, words
from tests.fakes.memory_upstream import MemoryUpstream
from tests.proxy.conftest import MASTER_KEY, Proxy
from thinkstop.proxy.config import parse_config
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.upstreams.base import ChatRequest, Continuation, StreamEvent
from thinkstop.proxy.upstreams.thinking import THINK_CLOSE

PROMPT = [{"role": "user", "content": "How many fruits?"}]
RAW_PROMPT = "<|im_start|>user\nHow many fruits?<|im_end|>\n<|im_start|>assistant\n<think>\n"
NEVER_HALT = {"thinkstop": {"policy": "consistency:window=1000"}}


# -- models ---------------------------------------------------------------------------------
async def test_one_model_by_id(client: openai.AsyncOpenAI) -> None:
    model = await client.models.retrieve("chat")
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "thinkstop")
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("nope")
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "model_not_found"


# -- text completions -------------------------------------------------------------------------
async def test_a_text_completion_that_opens_a_think_block_is_halted(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=2000))
    reply = await client.completions.create(model="raw", prompt=RAW_PROMPT)
    text = reply.choices[0].text
    reasoning, _, answer = text.partition(THINK_CLOSE)
    assert answer.strip() == "Final answer: 42."  # the model's own, after the halt
    assert reasoning.startswith(" so we count") and len(reasoning) < len(fake.script.text)
    decision = reply.model_dump()["thinkstop"]
    assert decision["halted"] is True and decision["strategy"] == "raw"
    assert fake.wait(lambda s: s.streams_closed_early == 1)
    assert fake.stats.of_kind("main")[0].body["prompt"] == RAW_PROMPT  # sent as it was
    continuation = fake.stats.of_kind("continuation")[0].body["prompt"]
    assert continuation.startswith(RAW_PROMPT) and continuation.rstrip().endswith(THINK_CLOSE)
    assert reply.usage is not None and reply.usage.completion_tokens > 0


async def test_a_streamed_text_completion_with_n_choices(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(50)))
    stream = await client.completions.create(model="raw", prompt=RAW_PROMPT, n=2, stream=True,
                                             extra_body=NEVER_HALT)
    texts = {0: "", 1: ""}
    decisions = []
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
        if chunk.model_dump().get("thinkstop"):
            decisions.append(chunk.model_dump()["thinkstop"])
    for text in texts.values():
        assert text.endswith(f"{THINK_CLOSE}\n\nThe answer is 42.")
    assert len(decisions) == 1 and decisions[0]["n"] == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_a_text_completion_with_nothing_to_monitor_passes_through(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, stream: bool
) -> None:
    fake.reset(Script(reasoning=words(30)))
    if stream:
        chunks = [c.model_dump() async for c in await client.completions.create(
            model="raw", prompt="Once upon a time", stream=True)]
        text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        decision = chunks[-1]["thinkstop"]
        assert all(c["choices"] for c in chunks)  # the usage chunk it asked for is dropped
    else:
        reply = await client.completions.create(model="raw", prompt="Once upon a time",
                                                echo=False)
        text, decision = reply.choices[0].text, reply.model_dump()["thinkstop"]
    assert text == fake.script.text + "\n</think>\n\nThe answer is 42."  # untouched
    assert decision["reason"] == "passthrough" and "no think block" in decision["passthrough"]
    assert fake.stats.probe_requests == 0


async def test_text_completions_need_a_raw_completion_model(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.completions.create(model="chat", prompt="x")
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "model"
    assert fake.stats.requests == []


# -- errors ---------------------------------------------------------------------------------
async def test_bad_parameters_are_a_400_the_sdk_raises_as_bad_request(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="chat", messages=PROMPT,  # type: ignore[arg-type]
                                             temperature=7)
    assert isinstance(info.value.body, dict)
    assert (info.value.body["param"], info.value.body["code"]) == ("temperature",
                                                                   "validation_error")
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="chat", messages=PROMPT,  # type: ignore[arg-type]
                                             extra_body={"thinkstop": {"policy": "nosuch"}})
    assert isinstance(bad.value.body, dict) and bad.value.body["code"] == "invalid_thinkstop"
    assert fake.stats.requests == []


async def test_unknown_routes_are_an_openai_shaped_404(proxy: Proxy) -> None:
    root = proxy.url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root, timeout=10) as http:
        missing = await http.post("/v1/embeddings", json={})
        assert missing.status_code == 404
        assert missing.json()["error"] == {"message": "Invalid URL (POST /v1/embeddings)",
                                           "type": "not_found_error", "code": "unknown_url",
                                           "param": None}
        wrong_method = await http.get("/v1/chat/completions")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"


# -- what every reply carries ----------------------------------------------------------------
async def test_every_reply_has_an_x_request_id(proxy: Proxy, locked_proxy: Proxy,
                                               tuned_proxy: Proxy,
                                               fake: FakeReasoningServer) -> None:
    fake.reset(Script(reasoning=words(20)))
    root = proxy.url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=10) as http:
        replies = [
            await http.post(f"{proxy.url}/chat/completions", json={"model": "chat",
                                                                   "messages": PROMPT}),
            await http.post(f"{proxy.url}/chat/completions", json={"model": "chat"}),
            await http.post(f"{proxy.url}/nowhere", json={}),
            await http.get(f"{proxy.url}/models"),
            await http.get(f"{root}/health/liveliness"),
            await http.get(f"{root}/metrics"),
            await http.post(f"{locked_proxy.url}/chat/completions", json={}),  # 401
            await http.post(f"{tuned_proxy.url}/chat/completions",  # 413
                            json={"model": "chat", "messages": [{"role": "user",
                                                                 "content": "x" * 8000}]}),
        ]
        async with http.stream("POST", f"{proxy.url}/chat/completions", json={
                "model": "chat", "messages": PROMPT, "stream": True}) as streamed:
            await streamed.aread()
            replies.append(streamed)
    assert [r.status_code for r in replies] == [200, 400, 404, 200, 200, 200, 401, 413, 200]
    ids = [r.headers.get("x-request-id") for r in replies]
    assert all(i and i.startswith("req_") for i in ids) and len(set(ids)) == len(ids)
    # the id is the request's log line's request_id, so a client's report can be found
    lines = proxy.logs.take()
    assert ids[0] in lines


async def test_a_crash_is_a_500_with_a_request_id() -> None:
    class Broken(MemoryUpstream):
        def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
            raise RuntimeError("a bug")

        def continue_answer(self, request: ChatRequest, reasoning: str,
                            strategy: Continuation) -> AsyncGenerator[StreamEvent, None]:
            raise RuntimeError("a bug")

    config = parse_config({"model_list": [{"model_name": "m",
                                           "litellm_params": {"model": "x/m"}}]}, environ={})
    with open("/dev/null", "w") as null:  # noqa: ASYNC230 - a local file, opened once
        app = create_app(config, {"m": Broken(Script())}, log_stream=null)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            reply = await http.post("/v1/chat/completions",
                                    json={"model": "m", "messages": PROMPT})
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "internal_error"
    assert reply.headers["x-request-id"].startswith("req_")
    assert "a bug" not in reply.text


async def test_cors_is_off_by_default_and_on_for_configured_origins(
    proxy: Proxy, tuned_proxy: Proxy
) -> None:
    origin = {"Origin": "https://app.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    async with httpx.AsyncClient(timeout=10) as http:
        off = await http.get(f"{proxy.url}/models", headers=origin)
        assert "access-control-allow-origin" not in off.headers
        on = await http.get(f"{tuned_proxy.url}/models", headers=origin)
        assert on.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in on.headers["access-control-expose-headers"]
        checked = await http.options(f"{tuned_proxy.url}/chat/completions", headers=preflight)
        assert checked.status_code == 200
        assert checked.headers["access-control-allow-origin"] == "https://app.example"
        other = await http.get(f"{tuned_proxy.url}/models",
                               headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_keepalive_comments_hold_hidden_reasoning_and_the_sdk_ignores_them(
    tuned_proxy: Proxy, fake: FakeReasoningServer
) -> None:
    # 150 reasoning tokens at 4 ms, none of them sent (stream_reasoning: false): without
    # comments the connection would be silent for 0.6 s, twelve keep-alive intervals.
    fake.reset(Script(reasoning=words(150), token_delay=0.004))
    body: dict[str, Any] = {"model": "chat", "messages": PROMPT, "stream": True,
                            "thinkstop": {"stream_reasoning": False, **NEVER_HALT["thinkstop"]}}
    async with httpx.AsyncClient(timeout=10) as http, http.stream(
            "POST", f"{tuned_proxy.url}/chat/completions", json=body) as reply:
        lines = [line async for line in reply.aiter_lines()]
    comments = [line for line in lines if line.startswith(":")]
    assert len(comments) >= 3 and set(comments) == {": keep-alive"}
    data = [line for line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]" and data.count("data: [DONE]") == 1
    assert lines.index(comments[0]) < lines.index(data[0])  # while nothing else was sent
    fake.reset(Script(reasoning=words(150), token_delay=0.004))
    async with openai.AsyncOpenAI(base_url=tuned_proxy.url, api_key="x",
                                  max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="chat", messages=PROMPT, stream=True,  # type: ignore[arg-type]
            extra_body={"thinkstop": body["thinkstop"]})
        content = "".join([c.choices[0].delta.content or "" async for c in stream
                           if c.choices])
    assert content == "The answer is 42."


async def test_keepalive_comments_reach_a_responses_stream_too(
    tuned_proxy: Proxy, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(150), token_delay=0.004))
    body = {"model": "chat", "input": "x", "stream": True,
            "thinkstop": {"stream_reasoning": False, **NEVER_HALT["thinkstop"]}}
    async with httpx.AsyncClient(timeout=10) as http, http.stream(
            "POST", f"{tuned_proxy.url}/responses", json=body) as reply:
        lines = [line async for line in reply.aiter_lines()]
    assert ": keep-alive" in lines
    assert "event: response.completed" in lines


async def test_master_key_guards_the_new_endpoints(locked_proxy: Proxy) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for method, path in (("POST", "/responses"), ("POST", "/completions"),
                             ("GET", "/models/chat"), ("GET", "/responses/resp_x")):
            reply = await http.request(method, f"{locked_proxy.url}{path}", json={})
            assert reply.status_code == 401, path
        ok = await http.get(f"{locked_proxy.url}/models/chat",
                            headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert ok.status_code == 200
