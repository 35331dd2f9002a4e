"""Client keys (401, names not keys), secrets never leaked, budgets (cap and window)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, Script, words
from tests.hardening.proxies import UPSTREAM_KEY, LoopProbe, closed_port, config, running
from tests.proxy.conftest import Proxy

MASTER = "sk-master-hardening-0001"
TEAM_A = "sk-team-a-secret-0002"  # capped at 100 reasoning tokens per request
TEAM_B = "sk-team-b-secret-0003"  # 800 tokens per 60 s window
SECRETS = (MASTER, TEAM_A, TEAM_B, UPSTREAM_KEY)
PROMPT = [{"role": "user", "content": "q"}]
NEVER_HALT = {"policy": "consistency:window=1000"}
KEYS: dict[str, Any] = {
    "master_key": "os.environ/THINKSTOP_MASTER_KEY",
    "client_keys": [
        {"name": "team-a", "key": TEAM_A, "budgets": {"max_reasoning_tokens": 100}},
        {"name": "team-b", "key": TEAM_B,
         "budgets": {"tokens_per_window": 800, "window_seconds": 60}},
    ],
}


@pytest.fixture(scope="module")
def keyed(fake_upstream: FakeReasoningServer) -> Iterator[tuple[Proxy, LoopProbe]]:
    cfg = config(fake_upstream.base_url, KEYS, env={"THINKSTOP_MASTER_KEY": MASTER})
    with running(cfg) as pair:
        yield pair


async def chat(proxy: Proxy, key: str | None, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"{proxy.url}/chat/completions", headers=headers,
                               json={"model": "chat", "messages": PROMPT, **body})


async def test_keys_are_required_and_known_by_name(keyed: tuple[Proxy, LoopProbe],
                                                   fake: FakeReasoningServer) -> None:
    proxy, _ = keyed
    fake.reset(Script(reasoning=words(20)))
    for key, code in ((None, "missing_api_key"), ("sk-guess-0000000000000", "invalid_api_key"),
                      (MASTER[:-1], "invalid_api_key")):
        reply = await chat(proxy, key)
        assert reply.status_code == 401 and reply.json()["error"]["code"] == code
        assert reply.headers["www-authenticate"] == "Bearer"
    for key in (MASTER, TEAM_A):
        assert (await chat(proxy, key)).status_code == 200
    root = proxy.url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{proxy.url}/models")).status_code == 401
        assert (await http.get(f"{root}/health/readiness")).status_code == 200  # open: LBs
        assert (await http.get(f"{root}/metrics")).status_code == 200
    await asyncio.sleep(0.05)
    callers = [json.loads(line).get("caller") for line in proxy.logs.take().splitlines()]
    assert {"master", "team-a"} <= set(callers)


async def test_secrets_never_leave_the_proxy(keyed: tuple[Proxy, LoopProbe],
                                             fake: FakeReasoningServer) -> None:
    """The upstream echoes our Authorization header in its errors: masked everywhere."""
    proxy, _ = keyed
    seen: list[str] = []
    fake.reset(Script(fail_main=500, echo_auth_on_error=True))
    for stream in (False, True):
        reply = await chat(proxy, TEAM_A, stream=stream)
        assert reply.status_code == 502
        seen.append(reply.text)
    fake.reset(Script.overthinking(total=300, token_delay=0.001))
    fake.script.fail_continuations, fake.script.echo_auth_on_error = 1, True
    reply = await chat(proxy, MASTER, stream=True)  # continuation fails, then falls back
    seen.append(reply.text)
    assert '"continuation_failed:reask"' in reply.text
    async with httpx.AsyncClient(timeout=10) as http:
        seen.append((await http.get(f"{proxy.url.removesuffix('/v1')}/metrics")).text)
    await asyncio.sleep(0.05)
    logs = proxy.logs.take()
    seen.append(logs)
    assert "[redacted]" in logs and "[redacted]" in seen[0]  # the echo happened, masked
    for text in seen:
        for secret in SECRETS:
            assert secret not in text


async def test_per_request_cap_forces_an_answer(keyed: tuple[Proxy, LoopProbe],
                                                fake: FakeReasoningServer) -> None:
    proxy, _ = keyed
    fake.reset(Script(reasoning=words(400), probe_answers=[(0, "7")]))
    # Neither the request nor a policy spec can lift the key's cap.
    for override in ({**NEVER_HALT, "max_tokens": 5000},
                     {"policy": "consistency:window=1000,max_tokens=5000"}):
        reply = await chat(proxy, TEAM_A, thinkstop=override)
        data = reply.json()
        assert data["thinkstop"]["reason"] == "budget_cap"
        assert data["thinkstop"]["budget_cap"] == 100
        # The 100th word is kept only if the upstream's next word (a space first) had
        # already arrived when the cut fell; otherwise it is snapped off: timing decides.
        decision = data["thinkstop"]
        assert decision["reasoning_tokens"] + decision["cut_snapped_tokens"] == 100
        assert decision["cut_snapped_tokens"] <= 1
        assert data["choices"][0]["message"]["content"] == "Final answer: 7."
    master = (await chat(proxy, MASTER, thinkstop=NEVER_HALT)).json()["thinkstop"]
    assert master["reason"] == "natural" and master["budget_cap"] is None


async def test_spent_window_is_a_429_naming_the_scope(keyed: tuple[Proxy, LoopProbe],
                                                      fake: FakeReasoningServer) -> None:
    proxy, _ = keyed
    fake.reset(Script(reasoning=words(900)))
    first = await chat(proxy, TEAM_B, thinkstop=NEVER_HALT)
    assert first.status_code == 200 and first.json()["usage"]["total_tokens"] > 800
    second = await chat(proxy, TEAM_B, stream=True)
    error = second.json()["error"]
    assert second.status_code == 429 and error["type"] == "rate_limit_error"
    assert error["code"] == "budget_exceeded" and "key:team-b" in error["message"]
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert TEAM_B not in second.text
    assert (await chat(proxy, TEAM_A)).status_code == 200  # other keys are unaffected
    assert fake.stats.main_streams == 2


@pytest.mark.redis
async def test_two_replicas_share_one_window_in_redis(
    redis_url: str, fake_upstream: FakeReasoningServer, fake: FakeReasoningServer
) -> None:
    cfg = config(fake_upstream.base_url, {"redis_url": redis_url},
                 chat={"budgets": {"tokens_per_window": 600, "window_seconds": 30}})
    fake.reset(Script(reasoning=words(700)))
    with running(cfg) as (one, _), running(cfg) as (two, _):
        assert (await chat(one, None, thinkstop=NEVER_HALT)).status_code == 200
        rejected = await chat(two, None)  # the other replica sees the same window
        assert rejected.status_code == 429
        assert "model:chat" in rejected.json()["error"]["message"]
        assert (await chat(two, None, model="raw")).status_code == 200  # unbudgeted model


async def test_budget_store_down_fails_open(fake_upstream: FakeReasoningServer,
                                            fake: FakeReasoningServer) -> None:
    cfg = config(fake_upstream.base_url,
                 {"redis_url": f"redis://127.0.0.1:{closed_port()}/0"},
                 chat={"budgets": {"tokens_per_window": 10}})
    fake.reset(Script(reasoning=words(30)))
    with running(cfg) as (proxy, _):
        assert (await chat(proxy, None)).status_code == 200
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{proxy.url.removesuffix('/v1')}/metrics")).text
        await asyncio.sleep(0.05)
        assert "budget_store_failed" in proxy.logs.take()
    assert "thinkstop_budget_store_errors_total 2.0" in metrics  # the check and the record


async def _auth_failures(proxy: Proxy) -> tuple[dict[str, float], str]:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(proxy.url.removesuffix("/v1") + "/metrics",
                               headers={"Authorization": f"Bearer {MASTER}"})).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("thinkstop_auth_failures_total{"):
            counts[line.split('"')[1]] = float(line.split()[-1])
    return counts, text


async def test_refused_keys_are_logged_and_counted_without_key_material(
    keyed: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    proxy, _ = keyed
    before, _ = await _auth_failures(proxy)
    proxy.logs.take()
    wrong = "sk-wrong-key-material-9999"
    assert (await chat(proxy, None)).status_code == 401
    assert (await chat(proxy, wrong)).status_code == 401
    assert (await chat(proxy, wrong)).status_code == 401
    logs = proxy.logs.take()
    lines = [json.loads(line) for line in logs.splitlines() if '"auth_failed"' in line]
    assert sorted(line["code"] for line in lines) == [
        "invalid_api_key", "invalid_api_key", "missing_api_key"]
    assert all(line["path"] == "/v1/chat/completions" for line in lines)
    assert wrong not in logs and "9999" not in logs
    after, text = await _auth_failures(proxy)
    assert after.get("invalid_api_key", 0) - before.get("invalid_api_key", 0) == 2
    assert after.get("missing_api_key", 0) - before.get("missing_api_key", 0) == 1
    assert wrong not in text
    assert fake.stats.requests == []
