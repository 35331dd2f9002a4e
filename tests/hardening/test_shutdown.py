"""SIGTERM drains in-flight streams: a real ``thinkstop serve`` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli import THINKSTOP
from tests.fakes import FakeReasoningServer, Script, free_port, words
from tests.hardening.proxies import ENV, UPSTREAM_KEY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path, fake_upstream: FakeReasoningServer) -> Iterator[tuple[str, Any]]:
    config = {
        "model_list": [{"model_name": "chat", "thinkstop": {"policy": "consistency:window=999"},
                        "litellm_params": {"model": "openai/fake",
                                           "api_base": fake_upstream.base_url,
                                           "api_key": "os.environ/FAKE_UPSTREAM_KEY"}}],
        "general_settings": {"graceful_shutdown_seconds": 10},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, **ENV, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        [*THINKSTOP, "serve", "--config", str(path), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"thinkstop serve did not start: {out}")
            time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_sigterm_lets_the_stream_finish(served: tuple[str, Any],
                                        fake_upstream: FakeReasoningServer) -> None:
    url, proc = served
    fake_upstream.reset(Script(reasoning=words(600), token_delay=0.002))  # about 1.2 s
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "q"}]}
    content, done, seen = "", 0, 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=20) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if not line.startswith("data: "):
                continue
            seen += 1
            if seen == 20:
                proc.send_signal(signal.SIGTERM)  # mid-reasoning
                time.sleep(0.3)
                with pytest.raises(httpx.TransportError):  # no new connections
                    httpx.get(f"{url}/health/liveliness", timeout=1)
            if line == "data: [DONE]":
                done += 1
                continue
            for choice in json.loads(line[6:])["choices"]:
                content += choice["delta"].get("content") or ""
    assert content == "The answer is 42." and done == 1
    assert fake_upstream.stats.streams_completed == 1
    # uvicorn re-raises the signal once drained, so the exit says "terminated by SIGTERM".
    assert proc.wait(10) in (0, -signal.SIGTERM)
    assert UPSTREAM_KEY not in (proc.stdout.read().decode() if proc.stdout else "")
