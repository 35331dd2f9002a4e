"""End to end at the HTTP level: SSE framing, errors, auth, cancellation, endpoints, logs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeReasoningServer, Script, words
from tests.proxy.conftest import MASTER_KEY, UPSTREAM_KEY, Proxy

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "SECRET-PROMPT-TEXT how many apples?"}
]


async def sse_events(proxy: Proxy, body: dict[str, Any]) -> list[str]:
    url = f"{proxy.url}/chat/completions"
    async with httpx.AsyncClient(timeout=20) as http, http.stream("POST", url, json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        return [line[6:] async for line in reply.aiter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_done_exactly_once_and_decision_last(
    proxy: Proxy, fake: FakeReasoningServer, include_usage: bool
) -> None:
    fake.reset(Script.overthinking(total=400, token_delay=0.001))
    body = {"model": "chat", "messages": PROMPT, "stream": True,
            "stream_options": {"include_usage": include_usage}}
    events = await sse_events(proxy, body)
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "thinkstop" in chunks[-1]
    assert ("usage" in chunks[-1]) is include_usage
    assert sum("thinkstop" in c for c in chunks) == 1


async def test_error_mid_stream_is_in_band_then_done(
    proxy: Proxy, fake: FakeReasoningServer
) -> None:
    # Dropped during the answer: part of it reached the client, so no forced answer can
    # replace it (a drop during the reasoning gets one: tests/hardening/test_faults.py).
    fake.reset(Script(reasoning=words(100), drop_in_answer_after=2))
    events = await sse_events(proxy, {"model": "chat", "messages": PROMPT, "stream": True,
                                      "thinkstop": {"policy": "consistency:window=1000"}})
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert error["error"]["type"] == "upstream_error"
    assert set(error["error"]) >= {"message", "type", "code"}


async def test_client_disconnect_closes_upstream_and_probes(
    proxy: Proxy, fake: FakeReasoningServer
) -> None:
    # Probes hang for 5 s; the stream is slow enough to still be running when we leave.
    fake.reset(Script(reasoning=words(3000), token_delay=0.003, probe_delay=5.0))
    async with openai.AsyncOpenAI(base_url=proxy.url, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(model="chat", messages=PROMPT,
                                                      stream=True)
        seen = 0
        async for _chunk in stream:
            seen += 1
            if seen >= 80:  # past two chunk boundaries: probes are in flight
                break
        assert fake.stats.probe_requests >= 1
        await stream.close()
    assert await asyncio.to_thread(fake.wait, lambda s: s.streams_closed_early == 1, 5.0)
    assert await asyncio.to_thread(
        fake.wait, lambda s: s.probes_cancelled == s.probe_requests, 5.0)
    assert fake.stats.sent_reasoning_tokens < 1000


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_failure_before_streaming_is_502(
    client: openai.AsyncOpenAI, fake: FakeReasoningServer, stream: bool
) -> None:
    fake.reset(Script(fail_main=503))
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="chat", messages=PROMPT, stream=stream)
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "upstream_error"


async def test_probe_failures_are_skipped_and_logged(
    client: openai.AsyncOpenAI, proxy: Proxy, fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(150), fail_probes=500, token_delay=0.001))
    reply = await client.chat.completions.create(model="chat", messages=PROMPT)
    data = reply.model_dump()
    assert data["choices"][0]["message"]["content"] == "The answer is 42."
    assert data["thinkstop"]["probes_failed"] == data["thinkstop"]["probes"] >= 3
    assert data["thinkstop"]["reason"] == "natural"
    await asyncio.sleep(0.05)
    lines = [json.loads(line) for line in proxy.logs.take().splitlines()]
    assert any(line["event"] == "probe_failed" for line in lines)


async def test_one_log_line_per_request_without_secrets_or_prompt(
    client: openai.AsyncOpenAI, proxy: Proxy, fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=400, token_delay=0.001))
    await client.chat.completions.create(model="chat", messages=PROMPT)
    await asyncio.sleep(0.05)
    text = proxy.logs.take()
    lines = [json.loads(line) for line in text.splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["model"] == "chat" and line["halted"] is True and line["status"] == "ok"
    assert {"reasoning_tokens", "probe_tokens", "answer_tokens", "duration_ms"} <= set(line)
    assert "SECRET-PROMPT-TEXT" not in text and UPSTREAM_KEY not in text


async def test_openai_shaped_client_errors(proxy: Proxy, fake: FakeReasoningServer) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
        bad_json = await http.post("/chat/completions", content=b"{nope",
                                   headers={"content-type": "application/json"})
        assert bad_json.status_code == 400
        assert bad_json.json()["error"]["code"] == "invalid_json"
        invalid = await http.post("/chat/completions", json={"model": "chat", "messages": []})
        assert invalid.status_code == 400  # as OpenAI answers a bad parameter, not 422
        assert invalid.json()["error"]["type"] == "invalid_request_error"
        assert invalid.json()["error"]["code"] == "validation_error"
        assert invalid.json()["error"]["param"] == "messages"
        unknown = await http.post("/chat/completions", json={"model": "nope", "messages": PROMPT})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "model_not_found"
        bad_policy = await http.post("/chat/completions", json={
            "model": "chat", "messages": PROMPT, "thinkstop": {"policy": "nosuch"}})
        assert bad_policy.status_code == 400
        assert "nosuch" in bad_policy.json()["error"]["message"]
        assert bad_policy.json()["error"]["code"] == "invalid_thinkstop"
        bad_rails = await http.post("/chat/completions", json={
            "model": "chat", "messages": PROMPT, "thinkstop": {"min_tokens": 90,
                                                               "max_tokens": 10}})
        assert bad_rails.status_code == 400  # a bad override is a 400, as a bad spec is
        assert bad_rails.json()["error"]["param"] == "thinkstop"
        assert bad_rails.json()["error"]["code"] == "invalid_thinkstop"
    assert fake.stats.main_streams == 0


async def test_master_key(locked_proxy: Proxy, fake: FakeReasoningServer) -> None:
    fake.reset(Script(reasoning=words(40)))
    for key in (None, "wrong"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(timeout=10) as http:
            reply = await http.post(f"{locked_proxy.url}/chat/completions", headers=headers,
                                    json={"model": "chat", "messages": PROMPT})
        assert reply.status_code == 401
        assert reply.json()["error"]["type"] == "authentication_error"
    async with openai.AsyncOpenAI(base_url=locked_proxy.url, api_key=MASTER_KEY,
                                  max_retries=0) as client:
        reply_ok = await client.chat.completions.create(model="chat", messages=PROMPT)
        assert reply_ok.choices[0].message.content
        models = await client.models.list()
        assert [m.id for m in models.data][:2] == ["chat", "raw"]
    assert MASTER_KEY not in locked_proxy.logs.take()


async def test_service_endpoints(client: openai.AsyncOpenAI, proxy: Proxy,
                                 fake: FakeReasoningServer) -> None:
    fake.reset(Script.overthinking(total=400, token_delay=0.001))
    await client.chat.completions.create(model="chat", messages=PROMPT)
    root = proxy.url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root, timeout=10) as http:
        assert (await http.get("/health/liveliness")).json() == {"status": "alive"}
        ready = await http.get("/health/readiness")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        metrics = (await http.get("/metrics")).text
        assert 'thinkstop_requests_total{model="chat",status="ok",stream="false"}' in metrics
        assert 'thinkstop_decisions_total{halted="true",model="chat",reason="plateau"}' in metrics
        assert 'thinkstop_tokens_total{kind="probe",model="chat"}' in metrics
        assert "thinkstop_time_to_first_token_seconds" in metrics
        assert (await http.get("/docs")).status_code == 200
        schema = (await http.get("/openapi.json")).json()
        assert "/v1/chat/completions" in schema["paths"]
    models = await client.models.list()
    assert {m.id for m in models.data} == {"chat", "raw", "prefill", "lite", "hidden"}


async def test_finished_streams_leave_their_upstream_connection_for_the_next(
    proxy: Proxy, fake: FakeReasoningServer
) -> None:
    """A stream read to ``[DONE]`` is read to its end, so its connection goes back to the
    pool: closing it one read early made every request open a new TCP connection (about
    a millisecond more to each first token)."""
    fake.reset(Script(reasoning=words(8)))
    body = {"model": "chat", "messages": PROMPT, "stream": True,
            "thinkstop": {"policy": "fixed:budget=100000"}}  # no probes: main streams only
    for _ in range(24):
        assert (await sse_events(proxy, body))[-1] == "[DONE]"
    assert fake.stats.main_streams == 24
    # Eight pooled clients take requests in turn (ClientPool): at most one connection
    # each when every stream is handed back; 24 without reuse.
    assert len(fake.stats.client_ports) <= 8


async def test_a_server_that_never_ends_its_finished_stream_does_not_hold_the_reply(
    proxy: Proxy, fake: FakeReasoningServer
) -> None:
    """Reading past ``[DONE]`` is bounded (a quarter second): a server that keeps its body
    open with comment lines costs the connection, not the client's wait."""
    fake.reset(Script(reasoning=words(8), linger_after_done=5.0))
    body = {"model": "chat", "messages": PROMPT, "stream": True,
            "thinkstop": {"policy": "fixed:budget=100000"}}
    started = asyncio.get_running_loop().time()
    events = await sse_events(proxy, body)
    elapsed = asyncio.get_running_loop().time() - started
    assert events[-1] == "[DONE]" and json.loads(events[-2])["thinkstop"]["reason"] == "natural"
    assert elapsed < 2.5  # the linger is 5 s; the drain gives up after 0.25 s
