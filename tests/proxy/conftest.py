"""A real proxy (uvicorn on loopback) in front of a real fake upstream server.

Both servers start once per session; each test resets the fake's script and counters.
Every reply the session proxies send is recorded and, after each test that used one,
checked against OpenAI's OpenAPI schema (:mod:`tests.proxy.openai_spec`): a test fails
when the proxy sent a shape the spec does not allow.
"""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.fakes import FakeReasoningServer, Script, ServerThread
from tests.proxy.openai_spec import SpecTap, load_spec, violations
from thinkstop.proxy.config import parse_config
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.upstreams.registry import build_upstream

MASTER_KEY = "sk-test-master-123"
UPSTREAM_KEY = "sk-upstream-secret-456"


class LockedBuffer(io.StringIO):
    """A StringIO that two threads can write and read."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            return super().write(s)

    def take(self) -> str:
        with self._lock:
            text = self.getvalue()
            self.seek(0)
            self.truncate()
            return text


@dataclass
class Proxy:
    url: str
    logs: LockedBuffer
    tap: SpecTap | None = None


def model_list(base: str) -> list[dict[str, Any]]:
    fast = {"chunk_tokens": 32, "probe_timeout": 2.0}
    return [
        {"model_name": "chat", "thinkstop": fast,
         "litellm_params": {"model": "openai/fake", "api_base": base,
                            "api_key": "os.environ/FAKE_UPSTREAM_KEY"}},
        {"model_name": "raw", "thinkstop": fast,
         "litellm_params": {"model": "text-completion-openai/fake", "api_base": base,
                            "api_key": "os.environ/FAKE_UPSTREAM_KEY"}},
        {"model_name": "prefill", "thinkstop": {**fast, "continuation": "prefill"},
         "litellm_params": {"model": "hosted_vllm/fake", "api_base": base,
                            "api_key": "os.environ/FAKE_UPSTREAM_KEY"}},
        {"model_name": "lite", "thinkstop": fast,
         "litellm_params": {"model": "openai/fake", "api_base": base, "adapter": "litellm",
                            "api_key": "os.environ/FAKE_UPSTREAM_KEY"}},
        {"model_name": "hidden", "thinkstop": {"max_tokens": 1000},
         "litellm_params": {"model": "openai/o3-mini", "api_base": base,
                            "api_key": "os.environ/FAKE_UPSTREAM_KEY"}},
    ]


def start_proxy(base: str, *, master_key: str | None = None,
                general: dict[str, Any] | None = None) -> tuple[ServerThread, Proxy]:
    env = {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY, "THINKSTOP_MASTER_KEY": master_key or ""}
    raw: dict[str, Any] = {"model_list": model_list(base), "general_settings": general or {}}
    if master_key:
        raw["general_settings"]["master_key"] = "os.environ/THINKSTOP_MASTER_KEY"
    config = parse_config(raw, environ=env)
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    logs = LockedBuffer()
    tap = SpecTap(create_app(config, upstreams, log_stream=logs))
    server = ServerThread(tap, lifespan="on")
    server.start()
    return server, Proxy(f"{server.url}/v1", logs, tap)


# The proxies whose replies are checked against the spec after each test using one.
SESSION_PROXIES = ("proxy", "locked_proxy", "tuned_proxy")


@pytest.fixture(autouse=True)
def replies_match_the_spec(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used a session proxy: every reply it got matches the spec."""
    proxies = [request.getfixturevalue(name) for name in SESSION_PROXIES
               if name in request.fixturenames]
    for proxy in proxies:
        if proxy.tap is not None:
            proxy.tap.take()  # what earlier tests left behind is theirs
    yield
    spec = load_spec()
    if spec is None or not proxies:
        return
    problems = [p for proxy in proxies if proxy.tap is not None
                for p in violations(spec, proxy.tap.take())]
    assert not problems, "replies that do not match the OpenAI spec:\n" + "\n".join(
        problems[:20])


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeReasoningServer]:
    with FakeReasoningServer(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeReasoningServer) -> FakeReasoningServer:
    fake_server.reset(Script())
    return fake_server


@pytest.fixture(scope="session")
def proxy(fake_server: FakeReasoningServer) -> Iterator[Proxy]:
    server, info = start_proxy(fake_server.base_url)
    try:
        yield info
    finally:
        server.stop()


@pytest.fixture(scope="session")
def locked_proxy(fake_server: FakeReasoningServer) -> Iterator[Proxy]:
    server, info = start_proxy(fake_server.base_url, master_key=MASTER_KEY)
    try:
        yield info
    finally:
        server.stop()


# Short keep-alive, CORS on, a small body limit: the operational settings under test.
TUNED = {"keepalive_seconds": 0.05, "cors_origins": ["https://app.example"],
         "max_request_bytes": 4096}


@pytest.fixture(scope="session")
def tuned_proxy(fake_server: FakeReasoningServer) -> Iterator[Proxy]:
    server, info = start_proxy(fake_server.base_url, general=dict(TUNED))
    try:
        yield info
    finally:
        server.stop()


@pytest.fixture
async def client(proxy: Proxy) -> AsyncIterator[openai.AsyncOpenAI]:
    proxy.logs.take()
    async with openai.AsyncOpenAI(base_url=proxy.url, api_key="anything",
                                  max_retries=0, timeout=20) as c:
        yield c
