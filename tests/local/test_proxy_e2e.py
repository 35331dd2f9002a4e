"""End to end on the real Gemma 3 270M: a real uvicorn server on loopback running the proxy
with the embedded adapter, driven by the real openai SDK. The stream shows reasoning, a
halt decided from real probes (log probabilities), and the continuation's answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.model

QUESTION = "I have 3 apples and eat 1. How many apples are left?"
TINY = {"model": "local/gemma3-270m", "n_ctx": 2048, "n_threads": 2, "temperature": 0,
        "max_tokens": 96, "answer_max_tokens": 48}


@pytest.fixture(scope="module")
def served(model_file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    from tests.fakes import ServerThread
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app
    from thinkstop.proxy.upstreams.registry import build_upstream

    config = parse_config({
        "model_list": [
            # halts at the first probe that has an answer: probes every 4 reasoning tokens
            {"model_name": "tiny-halt", "litellm_params": TINY,
             "thinkstop": {"policy": "confidence:threshold=0.01", "chunk_tokens": 4,
                           "probe_tokens": 8}},
            # never confident enough: the model finishes by itself
            {"model_name": "tiny-free", "litellm_params": TINY,
             "thinkstop": {"policy": "confidence:threshold=1.0", "chunk_tokens": 8,
                           "probe_tokens": 8}},
        ],
    })
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    server = ServerThread(create_app(config, upstreams), lifespan="on").start()
    try:
        yield f"{server.url}/v1", upstreams
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy_url(served: tuple[str, dict[str, Any]]) -> str:
    return served[0]


@pytest.fixture
async def client(proxy_url: str) -> AsyncIterator[Any]:
    import openai

    async with openai.AsyncOpenAI(base_url=proxy_url, api_key="none", max_retries=0,
                                  timeout=60) as c:
        yield c


async def stream_chat(client: Any, model: str) -> tuple[str, str, dict[str, Any], Any]:
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True},
    )
    reasoning, content, decision, usage = "", "", {}, None
    async for chunk in stream:
        data = chunk.model_dump()
        decision = data.get("thinkstop") or decision
        usage = chunk.usage or usage
        for choice in data["choices"]:
            reasoning += choice["delta"].get("reasoning_content") or ""
            content += choice["delta"].get("content") or ""
    return reasoning, content, decision, usage


async def test_models_lists_the_local_models(client: Any) -> None:
    ids = {m.id async for m in client.models.list()}
    assert ids == {"tiny-halt", "tiny-free"}


async def test_streamed_request_halts_on_a_probe_and_continues(client: Any) -> None:
    reasoning, content, decision, usage = await stream_chat(client, "tiny-halt")
    assert reasoning.strip() and content.strip()
    assert decision["halted"] is True and decision["reason"] == "confident"
    assert decision["strategy"] == "raw" and decision["upstream_closed_early"] is True
    assert decision["probes"] >= 1 and decision["probe_tokens"] > 0
    assert decision["answer_tokens"] > 0
    assert "</think>" not in content
    assert usage is not None and usage.completion_tokens >= (
        decision["reasoning_tokens"] + decision["answer_tokens"]
    )


async def test_cut_stream_counts_its_whole_rendered_prompt(
    client: Any, served: tuple[str, dict[str, Any]]
) -> None:
    """A halted main stream reports no usage: its prompt is counted from the template."""
    from thinkstop.proxy.upstreams.base import ChatRequest

    _, _, decision, usage = await stream_chat(client, "tiny-halt")
    upstream = served[1]["tiny-halt"]
    rendered = upstream.count_prompt_tokens(
        ChatRequest("local/gemma3-270m", [{"role": "user", "content": QUESTION}])
    )
    assert decision["halted"] is True
    assert rendered > upstream.count_tokens(QUESTION) + 10  # template and system turn
    assert usage.prompt_tokens >= rendered


async def test_unhalted_request_passes_the_models_own_output(
    client: Any, served: tuple[str, dict[str, Any]]
) -> None:
    """Probed but never halted: the client gets what the model alone writes (greedy)."""
    from thinkstop.proxy.upstreams.base import ChatRequest

    reasoning, content, decision, _ = await stream_chat(client, "tiny-free")
    assert decision["halted"] is False and decision["probes"] >= 1
    alone = [e async for e in served[1]["tiny-free"].stream(
        ChatRequest("local/gemma3-270m", [{"role": "user", "content": QUESTION}]))]
    assert reasoning == "".join(e.text for e in alone if e.kind == "reasoning")
    assert content == "".join(e.text for e in alone if e.kind == "content")
    assert reasoning.strip()


async def test_the_embedded_model_answers_the_probes_of_a_remote_model(
    model_file: Path,
) -> None:
    """The embedded model as the probe model of a remote (fake) reasoning model: every
    probe runs in process, none reaches the remote, and the remote writes the answer."""
    import openai

    from tests.fakes import FakeReasoningServer, Script, ServerThread
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app
    from thinkstop.proxy.upstreams.registry import build_upstream

    with FakeReasoningServer(api_key="k") as remote:
        # paced like a hosted model (20 tokens/s), so that in-process probes keep up
        # even on a busy 2-core machine
        remote.reset(Script.overthinking(total=400, settle_at=16, drift_at=1000,
                                         token_delay=0.05))
        config = parse_config({"model_list": [
            {"model_name": "remote", "litellm_params": {
                "model": "openai/fake", "api_base": remote.base_url, "api_key": "k"},
             "thinkstop": {"probe_model": "tiny", "chunk_tokens": 64, "probe_tokens": 8,
                           "policy": "confidence:threshold=0.0001"}},
            {"model_name": "tiny", "litellm_params": TINY},
        ]})
        upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                     for e in config.model_list}
        server = ServerThread(create_app(config, upstreams), lifespan="on").start()
        try:
            async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="none",
                                          max_retries=0, timeout=120) as client:
                reply = await client.chat.completions.create(
                    model="remote", messages=[{"role": "user", "content": QUESTION}])
        finally:
            server.stop()
        decision = reply.model_dump()["thinkstop"]
        assert decision["probe_model"] == "tiny" and decision["probes"] >= 1
        assert decision["probe_tokens"] > 0 and decision["probe_seconds"] > 0
        assert remote.stats.probe_requests == 0 and remote.stats.of_kind("probe") == []
        # a probe the tiny model answered halts at once; the remote writes the answer
        assert decision["halted"] is True
        assert remote.stats.continuation_requests == 1
        assert reply.choices[0].message.content.startswith("Final answer:")
