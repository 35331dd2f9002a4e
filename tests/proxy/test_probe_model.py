"""A separate probe model, end to end: the real openai SDK -> thinkstop (uvicorn on
loopback) -> two fake reasoning servers, one the main model and one the probe model.

Every probe must go to the probe model and none to the main one; the halt must still
come, and the answer after it must be the main model's own continuation. The decision
and the metrics account the probe model's tokens and time apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import FakeReasoningServer, Script, ServerThread
from tests.proxy.conftest import UPSTREAM_KEY, LockedBuffer
from thinkstop.proxy.config import ConfigError, parse_config
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.upstreams.registry import build_upstream

PROMPT: list[Any] = [{"role": "user", "content": "What is six times seven?"}]


def _params(base: str) -> dict[str, Any]:
    return {"model": "openai/fake", "api_base": base,
            "api_key": "os.environ/FAKE_UPSTREAM_KEY"}


@pytest.fixture(scope="module")
def probe_fake() -> Iterator[FakeReasoningServer]:
    with FakeReasoningServer(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture
def two(fake: FakeReasoningServer, probe_fake: FakeReasoningServer
        ) -> Iterator[tuple[str, FakeReasoningServer, FakeReasoningServer]]:
    config = parse_config({"model_list": [
        {"model_name": "main", "litellm_params": _params(fake.base_url),
         "thinkstop": {"probe_model": "prober", "chunk_tokens": 32, "probe_timeout": 5.0}},
        {"model_name": "prober", "litellm_params": _params(probe_fake.base_url)},
    ]}, environ={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY})
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    server = ServerThread(create_app(config, upstreams, log_stream=LockedBuffer()),
                          lifespan="on").start()
    try:
        yield f"{server.url}/v1", fake, probe_fake
    finally:
        server.stop()


async def test_every_probe_goes_to_the_probe_model_and_the_main_model_answers(
    two: tuple[str, FakeReasoningServer, FakeReasoningServer],
) -> None:
    url, main, prober = two
    script = Script.overthinking(total=800, settle_at=64, drift_at=600, token_delay=0.004)
    main.reset(script)
    # The probe model reads the main model's reasoning: the same script lets the fake
    # recognise how much of it a probe carries, and answer as the main model would.
    prober.reset(script)
    async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0,
                                  timeout=60) as client:
        stream = await client.chat.completions.create(
            model="main", messages=PROMPT, stream=True,
            stream_options={"include_usage": True})
        content, last = "", {}
        async for chunk in stream:
            data = chunk.model_dump()
            last = data
            for choice in data["choices"]:
                content += choice["delta"].get("content") or ""
    decision = last["thinkstop"]
    assert decision["halted"] is True and decision["reason"] == "plateau"
    assert decision["probe_model"] == "prober"
    assert main.stats.probe_requests == 0 and main.stats.of_kind("probe") == []
    assert prober.stats.probe_requests == decision["probes"] > 0
    assert prober.stats.of_kind("main") == [] and prober.stats.of_kind("continuation") == []
    # the answer after the halt is the main model's own continuation
    assert main.stats.continuation_requests == 1
    assert content == "Final answer: 42."
    assert decision["probe_tokens"] == prober.stats.probe_completion_tokens
    assert decision["probe_seconds"] > 0
    assert main.wait(lambda s: s.streams_closed_early == 1)
    assert main.stats.sent_reasoning_tokens < 600  # halted before the drift

    async with httpx.AsyncClient() as http:
        text = (await http.get(url.removesuffix("/v1") + "/metrics")).text
    assert 'thinkstop_probe_seconds_count{model="main",probe_model="prober"}' in text


async def test_a_probe_model_outage_leaves_the_main_stream_whole(
    two: tuple[str, FakeReasoningServer, FakeReasoningServer],
) -> None:
    url, main, prober = two
    script = Script.overthinking(total=300, drift_at=1000, token_delay=0.002)
    main.reset(script)
    prober.reset(dataclasses.replace(script, fail_probes=503))
    async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0,
                                  timeout=60) as client:
        reply = await client.chat.completions.create(model="main", messages=PROMPT)
    decision = reply.model_dump()["thinkstop"]
    assert decision["halted"] is False  # no probe answered: nothing to halt on
    assert reply.choices[0].message.content == "The answer is 41."
    assert main.stats.probe_requests == 0 and prober.stats.probe_requests > 0


def test_a_probe_model_must_name_another_configured_model() -> None:
    with pytest.raises(ConfigError, match="probe_model"):
        parse_config({"model_list": [
            {"model_name": "main", "litellm_params": {"model": "x/m"},
             "thinkstop": {"probe_model": "nowhere"}}]}, environ={})


async def test_a_slow_probe_model_shows_as_probe_lag(
    two: tuple[str, FakeReasoningServer, FakeReasoningServer],
) -> None:
    """Probes that answer slower than the stream flows: the decision and the metrics say
    how far the stream ran past each probe before its verdict came (the signal to add
    replicas or a faster probe model)."""
    url, main, prober = two
    script = Script.overthinking(total=400, drift_at=1000, token_delay=0.004)
    main.reset(script)
    prober.reset(dataclasses.replace(script, probe_delay=0.3))  # ~75 tokens stream by
    async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0,
                                  timeout=60) as client:
        reply = await client.chat.completions.create(
            model="main", messages=PROMPT, extra_body={"thinkstop": {"policy":
                                                                  "consistency:window=100"}})
    decision = reply.model_dump()["thinkstop"]
    assert decision["probes_observed"] > 0
    assert 32 <= decision["probe_lag_tokens"] <= 400
    async with httpx.AsyncClient() as http:
        text = (await http.get(url.removesuffix("/v1") + "/metrics")).text
    count = next(line for line in text.splitlines()
                 if line.startswith('thinkstop_probe_lag_tokens_count{model="main"}'))
    assert float(count.split()[-1]) >= decision["probes_observed"]
    assert 'thinkstop_probe_lag_tokens_bucket{le="0.0",model="main"}' in text


async def test_past_the_replicas_probe_cap_probes_are_shed_not_queued(
    fake: FakeReasoningServer, probe_fake: FakeReasoningServer,
) -> None:
    """``max_probes_in_flight``: two streams at once against a slow probe model on a
    replica that allows one probe in flight: the probes past the cap are shed (skipped
    and counted), never queued, and both streams still finish whole."""
    script = Script.overthinking(total=300, drift_at=1000, token_delay=0.004)
    fake.reset(script)
    probe_fake.reset(dataclasses.replace(script, probe_delay=0.3))
    config = parse_config({
        "general_settings": {"max_probes_in_flight": 1},
        "model_list": [
            {"model_name": "main", "litellm_params": _params(fake.base_url),
             "thinkstop": {"probe_model": "prober", "chunk_tokens": 32, "probe_timeout": 5.0,
                           "policy": "consistency:window=100"}},
            {"model_name": "prober", "litellm_params": _params(probe_fake.base_url)},
        ]}, environ={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY})
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    with ServerThread(create_app(config, upstreams, log_stream=LockedBuffer()),
                      lifespan="on") as server:
        url = f"{server.url}/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0,
                                      timeout=60) as client:
            replies = await asyncio.gather(*(client.chat.completions.create(
                model="main", messages=PROMPT) for _ in range(2)))
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"{server.url}/metrics")).text
    decisions = [r.model_dump()["thinkstop"] for r in replies]
    shed = sum(d["probes_shed"] for d in decisions)
    assert shed > 0 and all(d["probes_shed"] <= d["probes_skipped"] for d in decisions)
    assert all(r.choices[0].message.content for r in replies)
    assert probe_fake.stats.probe_requests == sum(d["probes"] for d in decisions)
    assert f'thinkstop_probes_total{{model="main",outcome="shed"}} {float(shed)}' in text
