"""Shared test setup.

- litellm must read its cost map locally (no network at import).
- A real Redis server (Debian's redis-server package) for the tests that need one.
- One hypothesis profile for the whole suite, chosen here rather than by whichever test
  module happens to be imported first: 150 examples, no per-example deadline (these
  machines are shared and slow; speed targets live in benchmark scripts).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from thinkstop.proxy.testing import free_port

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
settings.register_profile("thinkstop", max_examples=150, deadline=None)


def pytest_configure() -> None:
    settings.load_profile("thinkstop")


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
