"""A real redis-server, stopped (SIGSTOP: it accepts connections and answers nothing) and
continued: only the first request waits for the store's timeout, the spending of the
outage reaches Redis once it answers, exactly once (issue 15, row 9)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.guard.helpers import Log, sample, scope, until
from thinkstop.benchmarks.perf.budget_race import RedisServer
from thinkstop.proxy.guard.budgets import BudgetGuard, RedisCounterStore, Scope
from thinkstop.proxy.guard.scopes import Budgets
from thinkstop.proxy.observe.metrics import ProxyMetrics

pytestmark = pytest.mark.redis

TIMEOUT = 1.0  # the store's socket timeout, as in production
FAST = 0.5  # far below it, and generous on a loaded machine


@asynccontextmanager
async def started(server: RedisServer, cool_down: float
                  ) -> AsyncIterator[tuple[Budgets, ProxyMetrics, Log]]:
    metrics, log = ProxyMetrics(), Log()
    budgets = Budgets(RedisCounterStore(server.url, timeout=TIMEOUT), metrics, log,
                      cool_down=cool_down)
    try:
        assert await budgets.guard.store.ping()  # connected before the outage
        yield budgets, metrics, log
    finally:
        server.resume()
        await budgets.aclose()


async def counter(server: RedisServer, team: Scope) -> int:
    """The window's counter as another replica reads it."""
    reader = BudgetGuard(RedisCounterStore(server.url))
    try:
        return await reader.used(team)
    finally:
        await reader.store.aclose()


async def test_hung_redis_costs_one_timeout_then_admission_skips_it(
        own_redis: RedisServer) -> None:
    team = scope(1_000_000)
    async with started(own_redis, cool_down=0.3) as (budgets, metrics, log):
        own_redis.pause()
        began = time.perf_counter()
        first = await budgets.admit([team], 100)
        assert TIMEOUT * 0.9 <= time.perf_counter() - began < TIMEOUT * 5
        assert not first.enforced and "budget_store_breaker_open" in log.names()
        slowest = 0.0
        deadline = time.monotonic() + 2.0  # several cool-downs: trials run and fail
        while time.monotonic() < deadline:
            began = time.perf_counter()
            admission = await budgets.admit([team], 100)
            slowest = max(slowest, time.perf_counter() - began)
            assert not admission.enforced  # fail open: the request goes on
            await asyncio.sleep(0.05)  # trials run meanwhile
        assert slowest < FAST
        assert sample(metrics, "thinkstop_budget_store_breaker_open") == 1
        assert log.names().count("budget_store_failed") >= 2  # the first, and trials
        own_redis.resume()
        assert await until(lambda: budgets.breaker.allows(), within=10)  # a ping trial
        assert sample(metrics, "thinkstop_budget_store_breaker_open") == 0
        assert (await budgets.admit([team], 100)).enforced
        # 100 held now, and maybe the first admission's: Redis ran it when continued.
        assert await counter(own_redis, team) in (100, 200)


async def test_spend_during_an_outage_is_kept_and_replayed_once(
        own_redis: RedisServer) -> None:
    team = scope(1_000_000)
    async with started(own_redis, cool_down=0.3) as (budgets, metrics, _):
        # Both scripts loaded (a command sent into the hang must be one Redis can run).
        budgets.settle(await budgets.admit([scope(10)], 5), 5)
        assert await budgets.flush()
        before = await budgets.admit([team], 100)  # held in Redis
        own_redis.pause()
        began = time.perf_counter()
        budgets.settle(before, 40)  # the writer meets the hang, not this request
        assert time.perf_counter() - began < FAST
        assert await until(lambda: not budgets.breaker.allows(), within=10)
        for _ in range(20):
            began = time.perf_counter()
            admission = await budgets.admit([team], 100)
            budgets.settle(admission, 10)
            assert time.perf_counter() - began < FAST
        assert sample(metrics, "thinkstop_budget_spend_pending") == 1  # merged per key
        # Let a trial send the queued batch into the hang: its reply is lost, and Redis
        # runs it when continued; the retry must not count it again.
        errors = sample(metrics, "thinkstop_budget_store_errors_total")
        assert await until(lambda: sample(metrics, "thinkstop_budget_store_errors_total")
                           > errors, within=10)
        assert await budgets.flush() is False
        own_redis.resume()
        assert await until(lambda: budgets.breaker.allows(), within=10)
        assert await budgets.flush(10)
        assert await counter(own_redis, team) == 40 + 20 * 10
        assert sample(metrics, "thinkstop_budget_spend_pending") == 0


async def test_closing_while_redis_hangs_is_bounded(own_redis: RedisServer) -> None:
    team = scope(1_000_000)
    async with started(own_redis, cool_down=60.0) as (budgets, metrics, log):
        admission = await budgets.admit([team], 100)
        own_redis.pause()
        budgets.settle(admission, 30)
        began = time.perf_counter()
        await budgets.aclose()  # flush_timeout (2 s) at most, then the spend is lost
        assert time.perf_counter() - began < 2.0 + TIMEOUT * 3
        assert sample(metrics, "thinkstop_budget_spend_dropped_total") == 30
        assert "budget_spend_lost" in log.names()
