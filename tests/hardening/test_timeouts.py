"""Upstreams that stall: a first-chunk deadline (504 ``upstream_timeout``) and an idle
deadline between chunks (in-band once streaming), from ``general_settings`` or a model's
``litellm_params``, against the fake reasoning server misbehaving on the real wire."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, Script, words
from tests.hardening.proxies import ENV, UPSTREAM_KEY, LoopProbe, running
from tests.proxy.conftest import Proxy
from thinkstop.proxy.config import parse_config
from thinkstop.proxy.upstreams.base import ChatRequest, Upstream, UpstreamError
from thinkstop.proxy.upstreams.deadlines import Deadlines, within
from thinkstop.proxy.upstreams.registry import build_upstream

PROMPT = [{"role": "user", "content": "How many apples?"}]
NEVER_HALT = {"policy": "consistency:window=1000"}
FAST = {"chunk_tokens": 32, "probe_timeout": 0.3}


@pytest.fixture(scope="module")
def stalled(fake_upstream: FakeReasoningServer) -> Iterator[tuple[Proxy, LoopProbe]]:
    """No transport read timeout anywhere (the default, 600 s): only the deadlines act,
    0.5 s proxy-wide; ``brisk`` overrides the first-chunk one to 0.3 s in its params."""
    base, key = fake_upstream.base_url, "os.environ/FAKE_UPSTREAM_KEY"
    params = {"api_base": base, "api_key": key}
    raw = {"model_list": [
        {"model_name": "chat", "thinkstop": FAST,
         "litellm_params": {"model": "openai/fake", **params}},
        {"model_name": "raw", "thinkstop": FAST,
         "litellm_params": {"model": "text-completion-openai/fake", **params}},
        {"model_name": "lite", "thinkstop": FAST,
         "litellm_params": {"model": "openai/fake", "adapter": "litellm", **params}},
        {"model_name": "brisk", "thinkstop": FAST,
         "litellm_params": {"model": "openai/fake", **params, "first_byte_timeout": 0.3}},
    ], "general_settings": {"upstream_retries": 0, "upstream_first_byte_seconds": 0.5,
                            "upstream_idle_seconds": 0.5}}
    # litellm's first call loads its provider modules, seconds with the event loop
    # blocked: done here (the process holds them), not inside a test's 0.5 s deadline.
    fake_upstream.reset(Script(reasoning=words(5)))
    asyncio.run(_drain(build_upstream("warm", {
        "model": "openai/fake", "adapter": "litellm", "api_base": base,
        "api_key": UPSTREAM_KEY})))
    with running(parse_config(raw, environ=ENV)) as pair:
        yield pair


async def _drain(upstream: Upstream) -> None:
    async for _ in upstream.stream(ChatRequest("openai/fake", PROMPT)):
        pass
    await upstream.aclose()


async def stream_lines(proxy: Proxy, body: dict[str, Any]) -> tuple[int, list[Any]]:
    events: list[Any] = []
    async with httpx.AsyncClient(timeout=5) as http, http.stream(
            "POST", f"{proxy.url}/chat/completions", json={**body, "stream": True}) as reply:
        if reply.status_code != 200:
            await reply.aread()
            return reply.status_code, [reply.json()]
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    return 200, events


@pytest.mark.parametrize("model", ["chat", "raw", "lite", "brisk"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_headers_then_nothing_is_a_504(stalled: tuple[Proxy, LoopProbe],
                                             fake: FakeReasoningServer, model: str,
                                             streaming: bool) -> None:
    """The upstream answers 200 and sends no chunk: 504 ``upstream_timeout`` at the
    first-chunk deadline (not the transport's 600 s), and its connection is closed."""
    proxy, _ = stalled
    fake.reset(Script(headers_only=True))
    body = {"model": model, "messages": PROMPT, "stream": streaming}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await http.post(f"{proxy.url}/chat/completions", json=body)
    elapsed = time.monotonic() - started
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"]["code"] == "upstream_timeout"
    assert "before its first chunk" in reply.json()["error"]["message"]
    assert elapsed < (0.3 if model == "brisk" else 0.5) + 1.5
    assert fake.wait(lambda s: s.streams_closed_early == 1 and s.open_requests == 0)


async def test_an_unhalted_stream_that_goes_silent_ends_in_band(
        stalled: tuple[Proxy, LoopProbe], fake: FakeReasoningServer) -> None:
    """Halting off (``enabled: false``), the stream stops after 10 tokens: the client
    gets the error in-band (code ``upstream_timeout``), then ``[DONE]``."""
    proxy, _ = stalled
    fake.reset(Script(reasoning=words(100), stall_after=10))
    status, events = await stream_lines(proxy, {"model": "chat", "messages": PROMPT,
                                                "thinkstop": {"enabled": False}})
    assert status == 200
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    error = events[-2]["error"]
    assert error["code"] == "upstream_timeout" and "between two chunks" in error["message"]
    reasoning = "".join(c["delta"].get("reasoning_content") or "" for e in events[:-2]
                        for c in e.get("choices", []))
    assert reasoning.startswith("".join(words(9)))  # what came before the silence
    assert fake.wait(lambda s: s.streams_closed_early == 1)


async def test_a_halting_stream_that_goes_silent_still_answers(
        stalled: tuple[Proxy, LoopProbe], fake: FakeReasoningServer) -> None:
    """Mid-reasoning, the idle deadline fails the main stream; the run writes the answer
    from the reasoning it has (the ``main_stream_failed`` fault), as for a cut stream."""
    proxy, _ = stalled
    fake.reset(Script(reasoning=words(400), stall_after=100))
    started = time.monotonic()
    status, events = await stream_lines(proxy, {"model": "chat", "messages": PROMPT,
                                                "thinkstop": NEVER_HALT})
    assert status == 200 and events[-1] == "[DONE]"
    content = "".join(c["delta"].get("content") or "" for e in events[:-1]
                      for c in e.get("choices", []))
    assert content == "Final answer: 42."
    assert events[-2]["thinkstop"]["halted"] is True
    assert time.monotonic() - started < 3.0
    assert fake.wait(lambda s: s.streams_closed_early == 1)


# -- the deadline itself ---------------------------------------------------------------
async def _paced(delays: list[float]) -> AsyncGenerator[int, None]:
    for i, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield i


async def test_only_the_upstream_wait_counts() -> None:
    """A consumer that holds each chunk longer than the idle deadline is no stall; an
    upstream silent past it is, even after a slower first chunk within its own."""
    deadlines = Deadlines(first_byte=0.3, idle=0.1)
    got = []
    async for item in within(_paced([0.2, 0.0, 0.0]), deadlines):
        got.append(item)
        await asyncio.sleep(0.25)  # the client reads slowly: no clock runs meanwhile
    assert got == [0, 1, 2]
    with pytest.raises(UpstreamError) as caught:
        async for _ in within(_paced([0.0, 0.05, 0.3]), deadlines):
            pass
    assert caught.value.kind == "timeout" and "between two chunks" in caught.value.message
    with pytest.raises(UpstreamError, match="before its first chunk"):
        async for _ in within(_paced([0.5]), deadlines):
            pass


async def test_a_deadline_does_not_swallow_a_real_cancellation() -> None:
    """The consumer cancelled while waiting (a client gone) stays cancelled."""
    task = asyncio.ensure_future(anext(within(_paced([5.0]), Deadlines(5.0, 5.0))))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_deadlines_are_configured_per_model_or_proxy_wide() -> None:
    raw = {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/x", "api_base": "http://h"}},
        {"model_name": "b", "litellm_params": {"model": "openai/x", "api_base": "http://h",
                                               "first_byte_timeout": 300, "idle_timeout": 0}},
    ], "general_settings": {"upstream_first_byte_seconds": 20}}
    cfg = parse_config(raw)
    a, b = (Deadlines.from_params(e.model_name, cfg.upstream_params(e))
            for e in cfg.model_list)
    assert a == Deadlines(first_byte=20.0, idle=120.0)
    assert b == Deadlines(first_byte=300.0, idle=None)  # 0: no limit
    assert Deadlines.from_params("c", {}) == Deadlines(first_byte=60.0, idle=120.0)
