from __future__ import annotations

import uuid

import pytest

from thinkstop.proxy.guard.budgets import (
    BudgetGuard,
    BudgetSettings,
    MemoryCounterStore,
    RedisCounterStore,
    Scope,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="tokens_per_window"):  # pydantic's ValidationError
        BudgetSettings(tokens_per_window=-1)
    with pytest.raises(ValueError, match="window_seconds"):
        BudgetSettings(window_seconds=0)


def test_request_cap_is_the_tightest() -> None:
    scopes = [Scope("model:a", BudgetSettings(max_reasoning_tokens=500)),
              Scope("key:b", BudgetSettings(max_reasoning_tokens=200)),
              Scope("key:c", BudgetSettings())]
    assert BudgetGuard.request_cap(scopes) == 200
    assert BudgetGuard.request_cap([Scope("x", BudgetSettings())]) is None


async def test_memory_window_rejects_then_resets() -> None:
    clock = Clock(1000.0)
    guard = BudgetGuard(MemoryCounterStore(clock), clock)
    scope = Scope("key:team", BudgetSettings(tokens_per_window=100, window_seconds=60))
    assert await guard.check([scope]) is None
    await guard.record([scope], 60)
    assert await guard.check([scope]) is None
    await guard.record([scope], 60)
    rejection = await guard.check([scope])
    assert rejection is not None
    assert (rejection.scope, rejection.used, rejection.limit) == ("key:team", 120, 100)
    assert rejection.retry_after == 20  # window [960, 1020)
    clock.now = 1021.0
    assert await guard.check([scope]) is None
    assert await guard.used(scope) == 0


async def test_unlimited_scopes_are_not_counted() -> None:
    store = MemoryCounterStore()
    guard = BudgetGuard(store)
    scope = Scope("model:free", BudgetSettings())
    await guard.record([scope], 10_000)
    assert await guard.check([scope]) is None
    assert store._values == {}


@pytest.mark.redis
async def test_redis_counters_are_shared_between_replicas(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4()}:"
    clock = Clock(5000.0)
    one = BudgetGuard(RedisCounterStore(redis_url), clock)
    two = BudgetGuard(RedisCounterStore(redis_url), clock)
    scope = Scope(f"key:{prefix}", BudgetSettings(tokens_per_window=50, window_seconds=30))
    try:
        assert await one.store.ping()  # type: ignore[attr-defined]
        await one.record([scope], 30)
        await two.record([scope], 30)
        assert await one.used(scope) == 60
        rejection = await two.check([scope])
        assert rejection is not None and rejection.used == 60
    finally:
        await one.store.aclose()
        await two.store.aclose()


@pytest.mark.redis
async def test_redis_counters_expire(redis_url: str) -> None:
    import redis.asyncio as aioredis

    store = RedisCounterStore(redis_url)
    key = f"expiry-{uuid.uuid4()}"
    try:
        await store.add(key, 5, ttl_seconds=30)
        await store.add(key, 5, ttl_seconds=30)
        assert await store.get(key) == 10
        client = aioredis.from_url(redis_url)
        ttl = await client.ttl("thinkstop:budget:" + key)
        await client.aclose()
        assert 0 < ttl <= 30
    finally:
        await store.aclose()
