"""Proxies with hardening configs, on loopback, in front of the fake reasoning server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.fakes import ServerThread, free_port
from tests.proxy.conftest import LockedBuffer, Proxy
from thinkstop.proxy.config import ProxyConfig, parse_config
from thinkstop.proxy.guard.budgets import CounterStore
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.upstreams.registry import build_upstream

UPSTREAM_KEY = "sk-upstream-hardening-5c1f2a"
ENV = {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}
FAST = {"chunk_tokens": 32, "probe_timeout": 0.3}


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    return free_port()


def models(base: str, **extra: dict[str, Any]) -> list[dict[str, Any]]:
    """chat (openai, 1 s read timeout), raw, prefill (hosted_vllm), dead (refused)."""
    key = "os.environ/FAKE_UPSTREAM_KEY"
    entries: list[dict[str, Any]] = [
        {"model_name": "chat", "thinkstop": FAST,
         "litellm_params": {"model": "openai/fake", "api_base": base, "api_key": key,
                            "timeout": 1.0}},
        {"model_name": "raw", "thinkstop": FAST,
         "litellm_params": {"model": "text-completion-openai/fake", "api_base": base,
                            "api_key": key, "timeout": 1.0}},
        {"model_name": "prefill", "thinkstop": {**FAST, "continuation": "prefill"},
         "litellm_params": {"model": "hosted_vllm/fake", "api_base": base, "api_key": key}},
        {"model_name": "dead", "thinkstop": FAST,
         "litellm_params": {"model": "openai/fake", "api_key": key,
                            "api_base": f"http://127.0.0.1:{closed_port()}/v1"}},
        {"model_name": "wrongkey", "thinkstop": FAST,
         "litellm_params": {"model": "openai/fake", "api_base": base,
                            "api_key": "sk-not-the-upstream-key-77"}},
    ]
    for entry in entries:
        entry.update(extra.get(entry["model_name"], {}))
    return entries


def config(base: str, general: dict[str, Any] | None = None,
           env: dict[str, str] | None = None, **extra: dict[str, Any]) -> ProxyConfig:
    raw: dict[str, Any] = {"model_list": models(base, **extra),
                           "general_settings": {"upstream_retries": 1, **(general or {})}}
    return parse_config(raw, environ={**ENV, **(env or {})})


class LoopProbe:
    """Wraps an ASGI app to learn the server's event loop (to count its tasks)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = self.loop or asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def tasks(self) -> int:
        """Tasks alive on the server's loop (this probe's own one excluded)."""
        assert self.loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)


@contextmanager
def running(cfg: ProxyConfig, *, budget_store: CounterStore | None = None
            ) -> Iterator[tuple[Proxy, LoopProbe]]:
    upstreams = {e.model_name: build_upstream(e.model_name, cfg.upstream_params(e))
                 for e in cfg.model_list}
    logs = LockedBuffer()
    app = LoopProbe(create_app(cfg, upstreams, log_stream=logs, budget_store=budget_store))
    server = ServerThread(app, lifespan="on")
    server.start()
    try:
        yield Proxy(f"{server.url}/v1", logs), app
    finally:
        server.stop()


async def read_stream(proxy: Proxy, body: dict[str, Any], *, read_timeout: float = 20
                      ) -> tuple[str, str, list[Any], int]:
    """(reasoning, content, decoded events incl. "[DONE]", largest line in bytes) of a
    streamed chat request; exactly one ``[DONE]``, last."""
    events: list[Any] = []
    largest = 0
    async with httpx.AsyncClient(timeout=read_timeout) as http, http.stream(
            "POST", f"{proxy.url}/chat/completions", json={**body, "stream": True}) as reply:
        assert reply.status_code == 200, await reply.aread()
        async for line in reply.aiter_lines():
            largest = max(largest, len(line))
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    reasoning = content = ""
    for event in events[:-1]:
        for choice in event.get("choices", []):
            reasoning += choice["delta"].get("reasoning_content") or ""
            content += choice["delta"].get("content") or ""
    return reasoning, content, events, largest
