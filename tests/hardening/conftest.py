"""The fake reasoning upstream and a proxy with the hardening model list (the real Redis
server fixture, ``redis_url``, is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeReasoningServer, Script
from tests.hardening.proxies import UPSTREAM_KEY, LoopProbe, config, running
from tests.proxy.conftest import Proxy


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
