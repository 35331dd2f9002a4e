"""A real Redis server for the tests that need one (Debian's redis-server package), the
fake reasoning upstream, and a proxy with the hardening model list."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeReasoningServer, Script, free_port
from tests.hardening.proxies import UPSTREAM_KEY, LoopProbe, config, running
from tests.proxy.conftest import Proxy


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeReasoningServer]:
    """One fake reasoning server for the hardening tests (needs the upstream key)."""
    with FakeReasoningServer(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture
def fake(fake_upstream: FakeReasoningServer) -> FakeReasoningServer:
    fake_upstream.reset(Script())
    return fake_upstream


@pytest.fixture(scope="module")
def hardened(fake_upstream: FakeReasoningServer) -> Iterator[tuple[Proxy, LoopProbe]]:
    """A proxy with the hardening model list (see ``proxies.models``)."""
    with running(config(fake_upstream.base_url)) as pair:
        yield pair
