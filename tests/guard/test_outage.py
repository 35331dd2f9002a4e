"""The store failing: the breaker, the queue kept through an outage, and shutdown, on a
store that fails on demand (issue 15, row 9; Redis itself in test_hung_redis.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.guard.helpers import FlakyStore, Log, sample, scope, until
from thinkstop.proxy.guard.budgets import BudgetGuard, RedisCounterStore
from thinkstop.proxy.guard.scopes import Budgets
from thinkstop.proxy.observe.metrics import ProxyMetrics

ERRORS = "thinkstop_budget_store_errors_total"
OPEN = "thinkstop_budget_store_breaker_open"
PENDING = "thinkstop_budget_spend_pending"
DROPPED = "thinkstop_budget_spend_dropped_total"


def flaky(cool_down: float, *, max_pending_keys: int = 10_000, flush_timeout: float = 2.0
          ) -> tuple[Budgets, FlakyStore, ProxyMetrics, Log]:
    store, metrics, log = FlakyStore(), ProxyMetrics(), Log()
    budgets = Budgets(store, metrics, log, cool_down=cool_down,
                      max_pending_keys=max_pending_keys, flush_timeout=flush_timeout)
    return budgets, store, metrics, log


async def test_a_failure_opens_the_breaker_and_the_store_is_skipped_until_a_trial() -> None:
    budgets, store, metrics, log = flaky(0.05)
    team = scope(1000)
    store.down = True
    first = await budgets.admit([team], 100)
    assert not first.enforced and [h.reserved for h in first.holds] == [0]
    assert sample(metrics, ERRORS) == 1 and sample(metrics, OPEN) == 1
    assert log.names() == ["budget_store_failed", "budget_store_breaker_open"]
    calls = len(store.calls)
    second = await budgets.admit([team], 100)  # skipped: the store is not asked
    assert not second.enforced and sample(metrics, ERRORS) == 2
    assert store.calls[calls:] in ([], ["ping"])  # only a trial, if one came meanwhile
    budgets.settle(first, 30)
    budgets.settle(second, 50)
    assert sample(metrics, ERRORS) >= 4  # both settles queued while it was unavailable
    assert sample(metrics, PENDING) == 1  # merged: one counter
    assert await budgets.flush() is False  # nothing can be written yet
    store.down = False
    assert await until(lambda: budgets.breaker.allows())  # a trial wrote the queue
    assert await budgets.flush()
    assert await budgets.guard.used(team) == 80
    assert sample(metrics, OPEN) == 0 and sample(metrics, PENDING) == 0
    assert "budget_store_recovered" in log.names()
    assert (await budgets.admit([team], 100)).enforced
    await budgets.aclose()


async def test_failed_trials_keep_it_open_and_a_ping_trial_closes_it() -> None:
    budgets, store, metrics, log = flaky(0.02)
    team = scope(1000)
    store.down = True
    await budgets.admit([team], 10)  # opens it; nothing is queued, so trials are pings
    assert await until(lambda: store.calls.count("ping") >= 2)
    assert not budgets.breaker.allows() and sample(metrics, ERRORS) >= 3
    assert log.names().count("budget_store_breaker_open") == 1  # reported once
    store.down, store.silent_ping = False, True  # it answers, but not as a store should
    pings = store.calls.count("ping")
    assert await until(lambda: store.calls.count("ping") >= pings + 2)
    assert not budgets.breaker.allows()
    store.silent_ping = False
    assert await until(lambda: budgets.breaker.allows())
    assert (await budgets.admit([team], 10)).enforced
    await budgets.aclose()


async def test_a_failed_write_keeps_its_spend_for_the_next_try() -> None:
    budgets, store, metrics, _ = flaky(0.05)
    team = scope(1000)
    admission = await budgets.admit([team], 100)
    store.down = True
    budgets.settle(admission, 40)  # returns at once; the writer meets the failure
    assert await until(lambda: not budgets.breaker.allows())
    assert sample(metrics, ERRORS) == 1 and await budgets.flush() is False
    store.down = False
    assert await until(lambda: budgets.breaker.allows())
    assert await budgets.flush() and await budgets.guard.used(team) == 40
    await budgets.aclose()


async def test_the_outage_queue_is_bounded_and_merged_per_counter() -> None:
    budgets, store, metrics, log = flaky(60.0, max_pending_keys=3)
    a, b, c, d = (scope(10_000) for _ in range(4))
    store.down = True
    for team, spent in ((a, 5), (a, 7), (b, 11), (c, 13), (d, 17)):
        budgets.settle(await budgets.admit([team], 100), spent)
    assert sample(metrics, PENDING) == 3
    assert sample(metrics, DROPPED) == 12  # a's two spends, merged, were the oldest
    assert log.names().count("budget_spend_dropped") == 1
    store.down = False
    budgets.breaker.start_trial(force=True)  # no waiting out the minute's cool-down
    assert await budgets.flush()
    used = [await budgets.guard.used(s) for s in (a, b, c, d)]
    assert used == [0, 11, 13, 17]
    await budgets.aclose()


async def test_closing_with_the_store_down_counts_what_is_lost() -> None:
    budgets, store, metrics, log = flaky(60.0, flush_timeout=5.0)
    team = scope(1000)
    store.down = True
    budgets.settle(await budgets.admit([team], 100), 25)
    await budgets.aclose()  # one last try (it fails at once here), then give up
    assert store.calls[-1] == "settle"
    assert sample(metrics, DROPPED) == 25
    lost = [f for _, event, f in log.events if event == "budget_spend_lost"]
    assert lost == [{"counters": 1, "tokens": 25}]
    writer = budgets._writer
    budgets.settle(await budgets.admit([team], 100), 9)  # after closing: nothing writes
    assert sample(metrics, DROPPED) == 34 and budgets._writer is writer


@pytest.mark.redis
async def test_closing_writes_what_is_queued(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    budgets = Budgets(RedisCounterStore(redis_url, prefix=prefix), ProxyMetrics(), Log())
    teams = [scope(10_000) for _ in range(3)]
    for i, team in enumerate(teams):
        budgets.settle(await budgets.admit([team], 500), 100 * (i + 1))
    await budgets.aclose()  # at once: the writer may not have run yet
    reader = BudgetGuard(RedisCounterStore(redis_url, prefix=prefix))
    try:
        assert [await reader.used(t) for t in teams] == [100, 200, 300]
    finally:
        await reader.store.aclose()
