"""SIGTERM drains in-flight streams, and ends the ones still running at the end of the
grace period cleanly: a real ``thinkstop serve`` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli import THINKSTOP
from tests.fakes import FakeReasoningServer, Script, free_port, words
from tests.hardening.proxies import ENV, UPSTREAM_KEY

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(tmp_path: Path, fake_upstream: FakeReasoningServer,
            general: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A ``thinkstop serve`` subprocess (stdout and stderr together in ``proc.stdout``)."""
    config = {
        "model_list": [{"model_name": "chat", "thinkstop": {"policy": "consistency:window=999"},
                        "litellm_params": {"model": "openai/fake",
                                           "api_base": fake_upstream.base_url,
                                           "api_key": "os.environ/FAKE_UPSTREAM_KEY"}}],
        "general_settings": general,
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


@pytest.fixture
def served(tmp_path: Path, fake_upstream: FakeReasoningServer) -> Iterator[tuple[str, Any]]:
    with serving(tmp_path, fake_upstream, {"graceful_shutdown_seconds": 10}) as pair:
        yield pair


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


def _read(url: str, path: str, body: dict[str, Any], out: dict[str, Any]) -> None:
    """One request, its reply kept in ``out`` (status, the data lines, event names)."""
    lines: list[str] = []
    try:
        with httpx.stream("POST", f"{url}{path}", json=body, timeout=30) as reply:
            out["status"] = reply.status_code
            for line in reply.iter_lines():
                if line.startswith(("data: ", "event: ")):
                    lines.append(line)
                    out["started"] = True
    except httpx.HTTPError as exc:
        out["error"] = repr(exc)
    out["lines"] = lines


def test_sigterm_ends_endless_streams_with_a_final_frame(
        tmp_path: Path, fake_upstream: FakeReasoningServer) -> None:
    """Streams that would run for minutes, and a reply not yet started, at SIGTERM with
    a 1 s grace period: each stream ends with an in-band error (code
    ``server_shutting_down``) in its API's shape and, for chat, one ``[DONE]``; the
    waiting request gets a 503; the upstream streams are closed; no traceback."""
    fake_upstream.reset(Script(reasoning=words(16000), token_delay=0.005))
    prompt = [{"role": "user", "content": "q"}]
    requests = [
        ("/v1/chat/completions", {"model": "chat", "stream": True, "messages": prompt}),
        ("/v1/chat/completions", {"model": "chat", "stream": True, "messages": prompt}),
        ("/v1/responses", {"model": "chat", "stream": True, "input": "q"}),
        ("/v1/chat/completions", {"model": "chat", "messages": prompt}),  # not streamed
    ]
    with serving(tmp_path, fake_upstream, {"graceful_shutdown_seconds": 1}) as (url, proc):
        outs: list[dict[str, Any]] = [{} for _ in requests]
        threads = [threading.Thread(target=_read, args=(url, path, body, out))
                   for (path, body), out in zip(requests, outs, strict=True)]
        for thread in threads:
            thread.start()
        assert fake_upstream.wait(lambda s: s.main_streams == 4, timeout=10)
        deadline = time.monotonic() + 10
        while not all(out.get("started") for out in outs[:3]):
            assert time.monotonic() < deadline, outs
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(15)
        assert proc.wait(10) in (0, -signal.SIGTERM)
        elapsed = time.monotonic() - started
        output = proc.stdout.read().decode() if proc.stdout else ""
    for out in outs[:2]:  # chat streams: the error frame, then [DONE] once
        assert out["status"] == 200 and "error" not in out, out.get("error")
        data = [line[6:] for line in out["lines"] if line.startswith("data: ")]
        assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
        error = json.loads(data[-2])["error"]
        assert error["code"] == "server_shutting_down" and error["type"] == "server_error"
        assert len(data) > 20  # it was streaming until the cut
    responses = outs[2]
    assert responses["status"] == 200 and "error" not in responses
    assert responses["lines"][-2] == "event: error"
    event = json.loads(responses["lines"][-1][6:])
    assert event["type"] == "error" and event["code"] == "server_shutting_down"
    names = [line[7:] for line in responses["lines"] if line.startswith("event: ")]
    assert event["sequence_number"] == len(names) - 1
    whole = outs[3]
    assert whole["status"] == 503, whole
    assert 1.0 <= elapsed < 5.0
    assert fake_upstream.wait(lambda s: s.open_requests == 0, timeout=5)
    assert "Traceback" not in output and "Exception in ASGI" not in output, output
    assert "Cancel" not in output, output  # uvicorn never had to cancel a task itself
