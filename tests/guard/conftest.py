"""Budget guard fixtures: a redis-server of the test's own, to pause and resume."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from thinkstop.benchmarks.perf.budget_race import RedisServer


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """Never the shared ``redis_url`` server: these tests stop theirs."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer() as server:
        yield server
