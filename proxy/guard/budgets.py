"""Budget guard-rails for production: per model and per client key.

Two kinds of cap:

- ``max_reasoning_tokens``: a per-request cap on reasoning. It never rejects a request; it
  tightens the request's ``max_tokens`` guard-rail, so the model is cut there and writes
  its answer (the decision says ``reason: "budget_cap"``).
- ``tokens_per_window`` over ``window_seconds``: all tokens a scope spent (prompt and
  completion of every upstream call: main stream, probes, continuation) in the current
  fixed window (counter key ``<scope>:<window_seconds>:<index>``). A request already
  running is never cut short by another's spending.

Reserve, then settle. A request is admitted only if its reservation, the most it can cost
under its caps (the caller says how much), fits in what is left of every one of its
scopes' windows; the reservations are added to the counters in the same atomic step (one
Lua script in Redis, one await-free section in memory), all scopes or none. A request that
does not fit gets a 429 with ``Retry-After`` (the end of the window). When it ends, the
request settles: its reservation is replaced by what it really spent. A counter therefore
always holds the spending of the window's settled requests plus the reservations of its
running ones, and an admission only ever raises it to at most the limit. What bounds the
overshoot, per scope and window, with the store answering:

    spent  <=  limit  +  sum over the window's requests of max(0, spent - reserved)

so spending beyond the window is only possible when a request spends more than it
reserved (its settle adds the excess). A reservation is at most the scope's limit: a
request that may cost more than a whole window runs only when the window is empty, and
holds all of it; its spending beyond the limit is such an excess. Concurrency, replicas
and the order of settles do not enter the bound. While the store is unavailable the
windows are not enforced at all (fail open, see :mod:`thinkstop.proxy.guard.scopes`).
Replicas take the window from their own clocks: keep them in step (NTP), or near a
window's end they fill different windows.

A settle is booked in the window of its reservation, even when it arrives in a later one:
it releases the reservation where it was made and adds the spend there, so a counter
never carries a release it did not hold, and a long request's spending does not fall on
the next window's clients. Settles are idempotent per batch id, so a write retried after
a lost reply is not counted twice. A reservation whose admission never settles (a crash)
is held until its window ends; so is one whose reply was lost (the request then ran
without the store): both err towards refusing, never towards overshoot.

Counters live in process memory on one replica, or in Redis when ``redis_url`` is set, so
that replicas behind a load balancer share them. Keys in the store are scope names
(``model:<name>``, ``key:<name>``), never secrets. The scripts touch several keys at once,
so on Redis Cluster they would need the keys in one hash slot; a single Redis (or a
replicated one) is what this is for.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from thinkstop.proxy.config import BudgetSettings

# A counter lives window_seconds + GRACE_SECONDS from its first write: it outlasts its
# window, so that late settles still find it.
GRACE_SECONDS = 5
# How long Redis remembers a settled batch id. A retried batch comes right after the store
# answers again, so minutes are plenty.
RECEIPT_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Scope:
    """A named budget holder: ``model:r1`` or ``key:team-a``."""

    name: str
    limits: BudgetSettings


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request may not start: ``used`` (spent and held) of ``limit`` in the window,
    with room for less than ``reserve`` more."""

    scope: str
    used: int
    limit: int
    retry_after: int
    reserve: int = 0
    window_seconds: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """One scope's share of an admission: ``reserved`` tokens held in one window's counter."""

    scope: str
    key: str
    limit: int
    reserved: int
    ttl_seconds: int
    retry_after: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Spend:
    """A settle's change to one counter; spends for the same key merge by addition.

    ``delta`` (spent minus reserved) applies to a counter that still exists. ``spent`` is
    what a counter that is gone (expired, or lost with the store's data, reservation and
    all) is set to, so that nothing is released that is no longer held.
    """

    delta: int
    spent: int
    ttl_seconds: int

    def merged(self, other: Spend) -> Spend:
        return Spend(self.delta + other.delta, self.spent + other.spent,
                     max(self.ttl_seconds, other.ttl_seconds))


class CounterStore(Protocol):
    async def get(self, key: str) -> int: ...

    async def add(self, key: str, amount: int, ttl_seconds: int) -> int: ...

    async def reserve(self, holds: Sequence[Hold]) -> tuple[int, int] | None:
        """Add every hold's tokens to its counter if each fits (counter below its limit,
        and counter + reserved at most the limit), atomically; else change nothing and
        return (index of the first hold that does not fit, its counter)."""
        ...

    async def settle(self, batch: str, spends: Mapping[str, Spend]) -> None:
        """Apply ``spends`` by counter key, atomically, at most once per ``batch`` id."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def _fits(used: int, limit: int, amount: int) -> bool:
    # A full window refuses even a request that reserves nothing.
    return used < limit and used + amount <= limit


class MemoryCounterStore:
    """Counters in this process (one replica). Expired windows are dropped on access.

    Each method's work has no await in it, so it is atomic under asyncio; nothing here can
    fail halfway, so settles need no receipts.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._values: dict[str, tuple[int, float]] = {}
        self._lock = asyncio.Lock()

    def _live(self) -> float:
        now = self._clock()
        self._values = {k: v for k, v in self._values.items() if v[1] > now}
        return now

    async def get(self, key: str) -> int:
        value = self._values.get(key)
        if value is None or value[1] <= self._clock():
            return 0
        return value[0]

    async def add(self, key: str, amount: int, ttl_seconds: int) -> int:
        async with self._lock:
            now = self._live()
            current, expires = self._values.get(key, (0, now + ttl_seconds))
            self._values[key] = (current + amount, expires)
            return current + amount

    async def reserve(self, holds: Sequence[Hold]) -> tuple[int, int] | None:
        now = self._live()
        for i, hold in enumerate(holds):
            used = self._values.get(hold.key, (0, 0.0))[0]
            if not _fits(used, hold.limit, hold.reserved):
                return i, used
        for hold in holds:
            current, expires = self._values.get(hold.key, (0, now + hold.ttl_seconds))
            self._values[hold.key] = (current + hold.reserved, expires)
        return None

    async def settle(self, batch: str, spends: Mapping[str, Spend]) -> None:
        now = self._live()
        for key, spend in spends.items():
            value = self._values.get(key)
            if value is not None:
                self._values[key] = (max(0, value[0] + spend.delta), value[1])
            elif spend.spent > 0:
                self._values[key] = (spend.spent, now + spend.ttl_seconds)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._values.clear()


# KEYS: counters. ARGV: limit, amount, ttl for each counter, in order. Returns {0, 0} when
# every reservation was added, else {i, used} for the first (1-based) that does not fit.
_RESERVE_LUA = """
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  local limit = tonumber(ARGV[3 * i - 2])
  if used >= limit or used + tonumber(ARGV[3 * i - 1]) > limit then
    return {i, used}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[3 * i - 1])
  if redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, ARGV[3 * i])
  end
end
return {0, 0}
"""

# KEYS[1]: the batch's receipt; KEYS[2..]: counters. ARGV[1]: the receipt's ttl, then
# delta, spent, ttl for each counter. A batch already applied (its receipt exists) is not
# applied again: the reply to its first try was lost.
_SETTLE_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 2, #KEYS do
  local key = KEYS[i]
  local at = 3 * (i - 2) + 2
  if redis.call('EXISTS', key) == 1 then
    if redis.call('INCRBY', key, ARGV[at]) < 0 then
      redis.call('SET', key, '0', 'KEEPTTL')
    end
  elseif tonumber(ARGV[at + 1]) > 0 then
    redis.call('SET', key, ARGV[at + 1], 'EX', ARGV[at + 2])
  end
end
return 1
"""


class RedisCounterStore:
    """Counters in Redis, shared across replicas: reserve and settle are Lua scripts."""

    def __init__(self, url: str, prefix: str = "thinkstop:budget:", *,
                 timeout: float = 1.0) -> None:
        import redis.asyncio as aioredis

        # Bounded waits: a slow or absent Redis must never hold a request for long.
        self._client = aioredis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                         socket_connect_timeout=timeout)
        self._prefix = prefix
        self._reserve = self._client.register_script(_RESERVE_LUA)
        self._settle = self._client.register_script(_SETTLE_LUA)

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

    async def reserve(self, holds: Sequence[Hold]) -> tuple[int, int] | None:
        if not holds:
            return None
        args: list[int] = []
        for hold in holds:
            args += [hold.limit, hold.reserved, hold.ttl_seconds]
        index, used = await self._reserve(keys=[self._prefix + h.key for h in holds],
                                          args=args)
        return None if int(index) == 0 else (int(index) - 1, int(used))

    async def settle(self, batch: str, spends: Mapping[str, Spend]) -> None:
        if not spends:
            return
        args: list[int] = [RECEIPT_SECONDS]
        for spend in spends.values():
            args += [spend.delta, spend.spent, spend.ttl_seconds]
        keys = [f"{self._prefix}receipt:{batch}", *(self._prefix + k for k in spends)]
        await self._settle(keys=keys, args=args)

    async def aclose(self) -> None:
        await self._client.aclose()


class BudgetGuard:
    """Window keys and holds for the scopes a request belongs to, over one store."""

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

    def holds(self, scopes: Sequence[Scope], reserve: int) -> tuple[Hold, ...]:
        """``reserve`` tokens in the current window of each windowed scope (at most the
        scope's limit: see the module's note on overshoot)."""
        if reserve < 0:
            raise ValueError(f"a reservation is a token count, not {reserve}")
        out: list[Hold] = []
        for scope in scopes:
            limit = scope.limits.tokens_per_window
            if limit is None:
                continue
            window = scope.limits.window_seconds
            index, retry_after = self._window(scope.limits)
            out.append(Hold(scope.name, f"{scope.name}:{window}:{index}", limit,
                            min(reserve, limit), window + GRACE_SECONDS, retry_after, window))
        return tuple(out)

    async def reserve(self, holds: Sequence[Hold]) -> Rejection | None:
        """Place ``holds`` (all or none); the first that does not fit, or None."""
        refused = await self.store.reserve(holds)
        if refused is None:
            return None
        index, used = refused
        hold = holds[index]
        return Rejection(hold.scope, used, hold.limit, hold.retry_after, hold.reserved,
                         hold.window_seconds)

    async def check(self, scopes: Sequence[Scope]) -> Rejection | None:
        """The first scope whose window is spent, or None (reads only: racy by nature;
        admission uses :meth:`reserve`)."""
        for scope in scopes:
            limit = scope.limits.tokens_per_window
            if limit is None:
                continue
            used = await self.store.get(self._key(scope))
            if used >= limit:
                _, retry_after = self._window(scope.limits)
                return Rejection(scope.name, used, limit, retry_after,
                                 window_seconds=scope.limits.window_seconds)
        return None

    async def record(self, scopes: Sequence[Scope], tokens: int) -> None:
        """Add ``tokens`` to the scopes' current windows, with no reservation to settle."""
        if tokens <= 0:
            return
        for scope in scopes:
            if scope.limits.tokens_per_window is None:
                continue
            # Keep the counter a little past its window so late readers still see it.
            await self.store.add(self._key(scope), tokens,
                                 scope.limits.window_seconds + GRACE_SECONDS)

    async def used(self, scope: Scope) -> int:
        return await self.store.get(self._key(scope))
