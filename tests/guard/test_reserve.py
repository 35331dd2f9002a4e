"""Reserve at admission, settle at the end: the stores' contract (memory and real Redis)
and the guard-rail's semantics on top of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.guard.helpers import Log, scope
from thinkstop.proxy.config import BudgetSettings
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.budgets import (
    CounterStore,
    Hold,
    MemoryCounterStore,
    RedisCounterStore,
    Scope,
    Spend,
)
from thinkstop.proxy.guard.scopes import Budgets
from thinkstop.proxy.observe.metrics import ProxyMetrics


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hold(key: str, limit: int, reserved: int) -> Hold:
    return Hold(f"key:{key}", key, limit, reserved, 60, 30, 60)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    made: CounterStore
    if request.param == "memory":
        made = MemoryCounterStore()
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisCounterStore(url, prefix=f"test:{uuid.uuid4().hex}:")
    yield made
    await made.aclose()


# -- the stores' contract ---------------------------------------------------------------
async def test_reserve_is_all_or_nothing(store: CounterStore) -> None:
    assert await store.reserve([hold("a", 100, 60), hold("b", 50, 60)]) == (1, 0)
    assert await store.get("a") == 0  # b did not fit, so a was not touched either
    assert await store.reserve([hold("a", 100, 60), hold("b", 100, 60)]) is None
    assert (await store.get("a"), await store.get("b")) == (60, 60)
    assert await store.reserve([hold("b", 100, 10), hold("a", 100, 41)]) == (1, 60)
    assert await store.get("b") == 60
    assert await store.reserve([hold("a", 100, 40)]) is None  # exactly fills the window
    assert await store.get("a") == 100


async def test_a_full_window_refuses_even_an_empty_reservation(store: CounterStore) -> None:
    assert await store.reserve([hold("full", 10, 10)]) is None
    assert await store.reserve([hold("full", 10, 0)]) == (0, 10)
    assert await store.reserve([hold("zero", 0, 0)]) == (0, 0)  # a window of nothing
    assert await store.reserve([]) is None


async def test_settle_applies_deltas_and_sets_what_is_gone(store: CounterStore) -> None:
    await store.reserve([hold("c", 1000, 300)])
    await store.settle("b1", {"c": Spend(delta=-200, spent=100, ttl_seconds=60),
                              "gone": Spend(delta=-50, spent=70, ttl_seconds=60),
                              "nothing": Spend(delta=-50, spent=0, ttl_seconds=60)})
    assert await store.get("c") == 100  # the reservation of 300 became a spend of 100
    assert await store.get("gone") == 70  # no counter (expired, or lost): the spend alone
    assert await store.get("nothing") == 0
    await store.settle("b2", {"c": Spend(delta=-500, spent=0, ttl_seconds=60)})
    assert await store.get("c") == 0  # never below zero, whatever was lost


@pytest.mark.redis
async def test_redis_settles_a_batch_once_and_counters_expire(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisCounterStore(redis_url, prefix=prefix)
    client = aioredis.from_url(redis_url)
    try:
        await store.reserve([hold("k", 1000, 100)])
        spends = {"k": Spend(delta=-60, spent=40, ttl_seconds=60)}
        await store.settle("same-batch", spends)
        await store.settle("same-batch", spends)  # a retry whose first try had landed
        assert await store.get("k") == 40
        await store.settle("next-batch", spends)
        assert await store.get("k") == 0
        assert 0 < await client.ttl(prefix + "k") <= 60
        assert 0 < await client.ttl(prefix + "receipt:same-batch") <= 600
    finally:
        await client.aclose()
        await store.aclose()


# -- the guard-rail ----------------------------------------------------------------------
def budgets(clock: Clock | None = None) -> tuple[Budgets, ProxyMetrics]:
    clock = clock or Clock()
    metrics = ProxyMetrics()
    return Budgets(MemoryCounterStore(clock), metrics, Log(), clock=clock), metrics


async def test_a_reservation_that_does_not_fit_is_a_429() -> None:
    guard, metrics = budgets()
    team = scope(100, window=60, name="key:team")
    first = await guard.admit([team], 60)
    assert first.enforced and [h.reserved for h in first.holds] == [60]
    with pytest.raises(ProxyError) as caught:
        await guard.admit([team], 50)
    error = caught.value
    assert (error.status, error.type, error.code) == (429, "rate_limit_error",
                                                      "budget_exceeded")
    assert error.headers == {"Retry-After": "20"}  # window [960, 1020)
    assert "key:team" in error.message and "60 of 100" in error.message
    assert "up to 50 more" in error.message
    assert metrics.registry.get_sample_value("thinkstop_budget_rejections_total",
                                             {"scope": "key:team"}) == 1.0
    await guard.admit([team], 40)  # what is left still fits
    assert await guard.guard.used(team) == 100
    await guard.aclose()


async def test_settle_releases_what_was_not_spent_and_adds_the_excess() -> None:
    guard, _ = budgets()
    team = scope(1000)
    small = await guard.admit([team], 600)
    big = await guard.admit([team], 100)
    guard.settle(small, 200)
    guard.settle(big, 350)  # spent more than it reserved: the excess counts
    assert await guard.flush()
    assert await guard.guard.used(team) == 550
    await guard.admit([team], 450)  # the released 400 is admissible again
    await guard.aclose()


async def test_a_reservation_is_at_most_the_window() -> None:
    guard, _ = budgets()
    team = scope(100)
    whole = await guard.admit([team], 5000)  # larger than the window: admitted if empty
    assert [h.reserved for h in whole.holds] == [100]
    with pytest.raises(ProxyError):
        await guard.admit([team], 1)
    guard.settle(whole, 300)
    assert await guard.flush() and await guard.guard.used(team) == 300
    await guard.aclose()


async def test_every_scope_must_have_room_or_none_is_held() -> None:
    guard, _ = budgets()
    model, key = scope(10_000, name="model:m"), scope(100, name="key:k")
    guard.settle(await guard.admit([key], 90), 90)
    await guard.flush()
    with pytest.raises(ProxyError) as caught:
        await guard.admit([model, key], 50)
    assert "key:k" in caught.value.message and "model:m" not in caught.value.message
    assert await guard.guard.used(model) == 0  # the model's window held nothing for it
    both = await guard.admit([model, key], 10)
    assert [h.scope for h in both.holds] == ["model:m", "key:k"]
    assert (await guard.guard.used(model), await guard.guard.used(key)) == (10, 100)
    await guard.aclose()


async def test_a_late_settle_is_booked_in_the_window_of_its_reservation() -> None:
    clock = Clock(1000.0)
    guard, _ = budgets(clock)
    team = scope(1000, window=60)
    admission = await guard.admit([team], 500)
    clock.now = 1030.0  # the next window, [1020, 1080)
    guard.settle(admission, 200)
    assert await guard.flush()
    assert await guard.guard.used(team) == 0  # the new window got nothing from it
    clock.now = 1000.0
    assert await guard.guard.used(team) == 200  # released and spent where it was held
    await guard.aclose()


async def test_settle_counts_once_and_refuses_negative_counts() -> None:
    guard, _ = budgets()
    team = scope(1000)
    admission = await guard.admit([team], 100)
    guard.settle(admission, 80)
    guard.settle(admission, 80)  # ignored: the request would count twice
    assert await guard.flush() and await guard.guard.used(team) == 80
    with pytest.raises(ValueError, match="token count"):
        guard.settle(await guard.admit([team], 1), -1)
    with pytest.raises(ValueError, match="token count"):
        await guard.admit([team], -5)
    await guard.aclose()


async def test_scopes_without_a_window_hold_nothing() -> None:
    guard, _ = budgets()
    free = Scope("model:free", BudgetSettings(max_reasoning_tokens=100))
    admission = await guard.admit([free], 10_000)
    assert admission.holds == () and admission.enforced
    guard.settle(admission, 10_000)
    assert guard._writer is None  # nothing to write, no writer
    await guard.aclose()


async def test_the_interface_before_reservations_still_works() -> None:
    guard, _ = budgets()
    team = scope(100)
    await guard.admit([team])  # reserves nothing: only a spent window refuses
    await guard.record([team], 100)  # waits for the write, as its callers expect
    assert await guard.guard.used(team) == 100
    with pytest.raises(ProxyError, match="spent or held"):
        await guard.admit([team])
    await guard.record([team], 0)  # nothing spent, nothing written
    await guard.aclose()


def test_the_writer_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Budgets(MemoryCounterStore(), ProxyMetrics(), Log(), max_pending_keys=0)
