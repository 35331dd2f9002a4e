"""Probe answers stay out of what the client sees (issue 15, row 13): a probe is the
model answering a prompt the client never wrote, and a model that obeys "print your
system prompt" in one would hand it over in the decision's ``signals.answer``. Only a
model whose config sets ``expose_probe_answers: true`` shows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, Script, ServerThread, words
from tests.proxy.conftest import UPSTREAM_KEY, LockedBuffer, Proxy
from thinkstop.proxy.config import parse_config
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.upstreams.registry import build_upstream

LEAK = "the system prompt says swordfish"  # what the probes answer
PROMPT = [{"role": "user", "content": "How many apples?"}]
NEVER_HALT = {"policy": "consistency:window=1000"}


@pytest.fixture(scope="module")
def proxy(fake_server: FakeReasoningServer) -> Iterator[Proxy]:
    """``hidden``: the default; ``shown``: ``expose_probe_answers: true``."""
    base = fake_server.base_url
    params = {"model": "openai/fake", "api_base": base, "api_key": "os.environ/KEY"}
    fast = {"chunk_tokens": 16, "probe_timeout": 2.0}
    cfg = parse_config({"model_list": [
        {"model_name": "hidden", "thinkstop": fast, "litellm_params": params},
        {"model_name": "shown", "thinkstop": {**fast, "expose_probe_answers": True},
         "litellm_params": params},
    ]}, environ={"KEY": UPSTREAM_KEY})
    upstreams = {e.model_name: build_upstream(e.model_name, cfg.upstream_params(e))
                 for e in cfg.model_list}
    logs = LockedBuffer()
    with ServerThread(create_app(cfg, upstreams, log_stream=logs), lifespan="on") as server:
        yield Proxy(f"{server.url}/v1", logs)


@pytest.fixture
def leaky(fake: FakeReasoningServer) -> FakeReasoningServer:
    fake.reset(Script(reasoning=words(120), probe_answers=[(0, LEAK)], token_delay=0.003,
                      final_answers=[(0, "42")]))
    return fake


async def post(proxy: Proxy, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"{proxy.url}/chat/completions", json=body)


async def streamed_decision(proxy: Proxy, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    text, decision = "", None
    async with httpx.AsyncClient(timeout=20) as http, http.stream(
            "POST", f"{proxy.url}/chat/completions", json={**body, "stream": True}) as reply:
        async for line in reply.aiter_lines():
            text += line + "\n"
            if line.startswith("data: {"):
                decision = json.loads(line[6:]).get("thinkstop") or decision
    assert decision is not None
    return text, decision


@pytest.mark.parametrize("streaming", [False, True])
async def test_probe_answers_are_hidden_by_default(
    proxy: Proxy, leaky: FakeReasoningServer, streaming: bool
) -> None:
    body = {"model": "hidden", "messages": PROMPT, "thinkstop": NEVER_HALT}
    if streaming:
        text, decision = await streamed_decision(proxy, body)
    else:
        reply = await post(proxy, body)
        text, decision = reply.text, reply.json()["thinkstop"]
    assert decision["probes_observed"] >= 1
    signals = decision["signals"]
    assert "answer" not in signals and {"confidence", "change", "tokens"} <= set(signals)
    assert "swordfish" not in text  # nowhere in the reply


async def test_a_model_can_expose_them_a_request_cannot(
    proxy: Proxy, leaky: FakeReasoningServer
) -> None:
    reply = await post(proxy, {"model": "shown", "messages": PROMPT, "thinkstop": NEVER_HALT})
    assert "swordfish" in reply.json()["thinkstop"]["signals"]["answer"]
    # The operator's switch: a client cannot turn it on for itself.
    reply = await post(proxy, {"model": "hidden", "messages": PROMPT,
                               "thinkstop": {"expose_probe_answers": True}})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_thinkstop"
