"""50 concurrent requests against one fresh window, on one replica and on two sharing a
real Redis: reservations never add up to more than the window (issue 15, row 8)."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.guard.helpers import Log, scope
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.budgets import (
    CounterStore,
    MemoryCounterStore,
    RedisCounterStore,
    Scope,
)
from thinkstop.proxy.guard.scopes import Admission, Budgets
from thinkstop.proxy.observe.metrics import ProxyMetrics

WINDOW, COST, REQUESTS = 20_000, 2_000, 50


def replicas(stores: list[CounterStore]) -> list[Budgets]:
    return [Budgets(s, ProxyMetrics(), Log()) for s in stores]


async def admit_all(guards: list[Budgets], window_scope: Scope) -> list[Admission | None]:
    async def one(i: int) -> Admission | None:
        try:
            return await guards[i % len(guards)].admit([window_scope], COST)
        except ProxyError as exc:
            assert exc.status == 429
            return None

    return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


async def close(guards: list[Budgets]) -> None:
    for guard in guards:
        await guard.aclose()


def stores(kind: str, redis_url: str | None, n: int) -> list[CounterStore]:
    if kind == "memory":
        shared = MemoryCounterStore()
        return [shared] * n  # one process: one store
    assert redis_url is not None
    return [RedisCounterStore(redis_url) for _ in range(n)]


CASES = [pytest.param("memory", 1, id="memory"),
         pytest.param("redis", 1, id="redis-1-replica", marks=pytest.mark.redis),
         pytest.param("redis", 2, id="redis-2-replicas", marks=pytest.mark.redis)]


@pytest.mark.parametrize(("kind", "n"), CASES)
async def test_concurrent_admissions_never_reserve_more_than_the_window(
        kind: str, n: int, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    guards = replicas(stores(kind, url, n))
    team = scope(WINDOW)
    try:
        admitted = [a for a in await admit_all(guards, team) if a is not None]
        reserved = sum(h.reserved for a in admitted for h in a.holds)
        assert reserved <= WINDOW
        assert len(admitted) == WINDOW // COST  # and the window is not left idle either
        assert await guards[0].guard.used(team) == reserved
    finally:
        await close(guards)


@pytest.mark.parametrize(("kind", "n"), CASES)
async def test_concurrent_requests_never_spend_more_than_the_window(
        kind: str, n: int, request: pytest.FixtureRequest) -> None:
    """Whole lives: admit, run a while, settle at most the reservation; released tokens
    admit latecomers, and what is spent stays within the window."""
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    guards = replicas(stores(kind, url, n))
    team = scope(WINDOW)
    rng = random.Random(15)
    spent: list[int] = []

    async def life(i: int) -> None:
        await asyncio.sleep(rng.uniform(0, 0.05))
        guard = guards[i % n]
        try:
            admission = await guard.admit([team], COST)
        except ProxyError:
            return
        await asyncio.sleep(rng.uniform(0.005, 0.03))
        cost = rng.randint(COST // 4, COST)
        spent.append(cost)
        guard.settle(admission, cost)

    try:
        await asyncio.gather(*(life(i) for i in range(REQUESTS)))
        for guard in guards:
            assert await guard.flush()
        assert await guards[0].guard.used(team) == sum(spent) <= WINDOW
        assert len(spent) >= WINDOW // COST
    finally:
        await close(guards)


@pytest.mark.redis
async def test_the_same_load_overshoots_with_check_then_record(redis_url: str) -> None:
    """The race these tests would catch: checking, then recording, admits every request."""
    guards = replicas(stores("redis", redis_url, 2))
    team = scope(WINDOW)

    async def life(i: int) -> bool:
        guard = guards[i % 2].guard
        if await guard.check([team]) is not None:
            return False
        await asyncio.sleep(0.01)
        await guard.record([team], COST)
        return True

    try:
        admitted = sum(await asyncio.gather(*(life(i) for i in range(REQUESTS))))
        assert admitted * COST > WINDOW
    finally:
        await close(guards)
