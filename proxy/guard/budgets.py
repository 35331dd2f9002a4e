"""Budget guard-rails for production: per model and per client key.

Two kinds of cap:

- ``max_reasoning_tokens``: a per-request cap on reasoning. It never rejects a request; it
  tightens the request's ``max_tokens`` guard-rail, so the model is cut there and writes
  its answer (the decision says ``reason: "budget_cap"``).
- ``tokens_per_window`` over ``window_seconds``: all tokens a scope spent (prompt and
  completion of every upstream call: main stream, probes, continuation) in the current
  fixed window. A request arriving when a scope is at or over its cap gets a 429 with
  ``Retry-After``; a request already running is never cut short by another's spending.

Counters live in process memory on one replica, or in Redis when ``redis_url`` is set, so
that replicas behind a load balancer share them. Keys in the store are scope names
(``model:<name>``, ``key:<name>``), never secrets.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from thinkstop.proxy.config import BudgetSettings


@dataclass(frozen=True, slots=True)
class Scope:
    """A named budget holder: ``model:r1`` or ``key:team-a``."""

    name: str
    limits: BudgetSettings


@dataclass(frozen=True, slots=True)
class Rejection:
    scope: str
    used: int
    limit: int
    retry_after: int


class CounterStore(Protocol):
    async def get(self, key: str) -> int: ...

    async def add(self, key: str, amount: int, ttl_seconds: int) -> int: ...

    async def aclose(self) -> None: ...


class MemoryCounterStore:
    """Counters in this process (one replica). Expired windows are dropped on access."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._values: dict[str, tuple[int, float]] = {}
        self._lock = asyncio.Lock()

    async def get(self, key: str) -> int:
        value = self._values.get(key)
        if value is None or value[1] <= self._clock():
            return 0
        return value[0]

    async def add(self, key: str, amount: int, ttl_seconds: int) -> int:
        async with self._lock:
            now = self._clock()
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
            current, expires = self._values.get(key, (0, now + ttl_seconds))
            self._values[key] = (current + amount, expires)
            return current + amount

    async def aclose(self) -> None:
        self._values.clear()


class RedisCounterStore:
    """Counters in Redis (INCRBY + EXPIRE in one transaction), shared across replicas."""

    def __init__(self, url: str, prefix: str = "thinkstop:budget:", *,
                 timeout: float = 1.0) -> None:
        import redis.asyncio as aioredis

        # Bounded waits: a slow or absent Redis must never hold a request for long.
        self._client = aioredis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                         socket_connect_timeout=timeout)
        self._prefix = prefix

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def get(self, key: str) -> int:
        value = await self._client.get(self._prefix + key)
        return int(value) if value is not None else 0

    async def add(self, key: str, amount: int, ttl_seconds: int) -> int:
        full = self._prefix + key
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrby(full, amount)
            pipe.expire(full, ttl_seconds, nx=True)
            total, _ = await pipe.execute()
        return int(total)

    async def aclose(self) -> None:
        await self._client.aclose()


class BudgetGuard:
    """Checks and records spending for the scopes a request belongs to."""

    def __init__(self, store: CounterStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def _window(self, limits: BudgetSettings) -> tuple[int, int]:
        now = self._clock()
        index = math.floor(now / limits.window_seconds)
        retry_after = max(1, math.ceil((index + 1) * limits.window_seconds - now))
        return index, retry_after

    def _key(self, scope: Scope) -> str:
        index, _ = self._window(scope.limits)
        return f"{scope.name}:{scope.limits.window_seconds}:{index}"

    @staticmethod
    def request_cap(scopes: Sequence[Scope]) -> int | None:
        """The tightest per-request reasoning cap among the scopes, if any."""
        caps = [s.limits.max_reasoning_tokens for s in scopes]
        present = [c for c in caps if c is not None]
        return min(present) if present else None

    async def check(self, scopes: Sequence[Scope]) -> Rejection | None:
        """The first scope whose window is spent, or None when the request may go."""
        for scope in scopes:
            limit = scope.limits.tokens_per_window
            if limit is None:
                continue
            used = await self.store.get(self._key(scope))
            if used >= limit:
                _, retry_after = self._window(scope.limits)
                return Rejection(scope.name, used, limit, retry_after)
        return None

    async def record(self, scopes: Sequence[Scope], tokens: int) -> None:
        if tokens <= 0:
            return
        for scope in scopes:
            if scope.limits.tokens_per_window is None:
                continue
            # Keep the counter a little past its window so late readers still see it.
            await self.store.add(self._key(scope), tokens, scope.limits.window_seconds + 5)

    async def used(self, scope: Scope) -> int:
        return await self.store.get(self._key(scope))
