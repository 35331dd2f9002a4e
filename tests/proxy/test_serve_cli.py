"""``thinkstop serve`` as a user starts it: a busy port is found before any model loads,
and a ready server says where it listens and which model names to send."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from tests.cli import THINKSTOP
from tests.fakes import FakeReasoningServer, Script, free_port, words
from thinkstop.proxy.entrypoints.serve import port_problem, ready_banner

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*THINKSTOP, "serve", *args], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_busy_port_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    # a local model that would take seconds to check and load, were the port not checked
    config.write_text(yaml.safe_dump({"model_list": [
        {"model_name": "tiny", "litellm_params": {"model": "local/gemma3-270m"}}]}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_problem("127.0.0.1", port) is not None
        started = time.monotonic()
        proc = _serve("--config", str(config), "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
    assert "loading" not in err and "Traceback" not in err
    assert time.monotonic() - started < 30


def test_a_ready_server_prints_its_url_and_model_names(tmp_path: Path) -> None:
    with FakeReasoningServer(Script(reasoning=words(20))) as fake:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"model_list": [
            {"model_name": name, "litellm_params": {"model": "openai/fake",
                                                     "api_base": fake.base_url}}
            for name in ("alpha", "beta")]}))
        port = free_port()
        proc = _serve("--config", str(config), "--port", str(port))
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.strip() == f"thinkstop is ready: base URL http://127.0.0.1:{port}/v1"
            assert proc.stdout.readline().strip() == "models: alpha, beta"
            assert "curl" in proc.stdout.readline()
            # it really is ready: the printed base URL answers
            models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
            assert [m["id"] for m in models["data"]] == ["alpha", "beta"]
        finally:
            proc.terminate()
            proc.communicate(timeout=30)  # reads and closes both pipes


def test_the_banner_names_a_reachable_host() -> None:
    assert "http://localhost:8000/v1" in ready_banner("0.0.0.0", 8000, ["m"])
    assert '"model": "m"' in ready_banner("127.0.0.1", 1, ["m"])
