"""Which budgets a request answers to, and what happens at their limits.

A request belongs to up to two scopes: its model (``model_list[].budgets``, scope
``model:<model_name>``) and its caller's key (``client_keys[].budgets``, scope
``key:<name>``). The tightest ``max_reasoning_tokens`` of the two caps the request's
reasoning (the decision says ``reason: "budget_cap"`` when that cut is what stopped it).
A request reserves its largest possible cost in both windows when it is admitted, and a
reservation that does not fit in either is a 429 naming the scope, never the key; when it
ends, it settles what it really spent (see :mod:`thinkstop.proxy.guard.budgets` for what
bounds the overshoot).

Counters are in memory, or in Redis when ``redis_url`` is set (shared by replicas). The
store is kept off the response path and out of an outage's way:

- Only admission awaits the store, bounded by its socket timeout. A settle queues the spend
  and returns; a background writer (one task, alive while there is something to write)
  does the store I/O, merging queued spends per counter key and sending them in batches.
- A circuit breaker: a failure (error or timeout) opens it, and while it is open the store
  is not asked at all, so that only the requests in flight when the store stopped answering
  wait for its timeout. Admissions fail open at once (the per-request cap still holds, the
  windows are not enforced): an outage of the budget store should not take every app
  behind the proxy down with it. After ``cool_down`` seconds one trial goes to the store
  in the background (the queued writes, or a ping when there are none); success closes
  the breaker, failure opens it for another cool-down.
- Spending during an outage is kept in the queue, merged per counter key, for at most
  ``max_pending_keys`` counters (beyond that the oldest counter's spend is dropped and
  counted), and written when the store answers again.

Every store failure, every admission that goes on without the store and every settle
queued while it is unavailable counts in ``thinkstop_budget_store_errors``; failures and
the breaker's changes are logged (``budget_store_failed``, ``budget_store_breaker_open``,
``budget_store_recovered``); ``thinkstop_budget_store_breaker_open`` is 1 while the store
is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from thinkstop.proxy.config import ModelEntry
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.budgets import (
    BudgetGuard,
    CounterStore,
    Hold,
    MemoryCounterStore,
    Rejection,
    Scope,
    Spend,
)
from thinkstop.proxy.guard.keys import Caller
from thinkstop.proxy.observe.metrics import ProxyMetrics

# What a store client raises when Redis is down or slow (redis.RedisError derives from
# Exception; OSError covers sockets). Listed so that nothing else is swallowed.
try:
    from redis import RedisError as _RedisError

    STORE_ERRORS: tuple[type[Exception], ...] = (_RedisError, OSError, TimeoutError)
except ImportError:  # the redis extra is not installed: only the memory store exists
    STORE_ERRORS = (OSError, TimeoutError)


def make_store(redis_url: str | None) -> CounterStore:
    """Redis counters when ``redis_url`` is set, else in-process ones."""
    if not redis_url:
        return MemoryCounterStore()
    from thinkstop.proxy.guard.budgets import RedisCounterStore

    return RedisCounterStore(redis_url)


BreakerState = Literal["closed", "open", "trial"]


class Breaker:
    """Closed (use the store); open for ``cool_down`` seconds after a failure (skip it);
    then one trial at a time, whose success closes it and whose failure opens it again."""

    def __init__(self, cool_down: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cool_down = cool_down
        self._clock = clock
        self.state: BreakerState = "closed"
        self._opened_at = 0.0

    def allows(self) -> bool:
        return self.state == "closed"

    def trial_in(self) -> float:
        """Seconds until a trial is due (0 when due or not open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.cool_down - self._clock())

    def start_trial(self, *, force: bool = False) -> bool:
        """Let one call through, if the breaker is open and its cool-down is over."""
        if self.state != "open" or (self.trial_in() > 0 and not force):
            return False
        self.state = "trial"
        return True

    def failed(self) -> bool:
        """Open after a failure; True when it was closed until now. Failures of calls that
        were already in flight when it opened do not restart the cool-down."""
        was = self.state
        if was != "open":
            self.state = "open"
            self._opened_at = self._clock()
        return was == "closed"

    def succeeded(self) -> bool:
        """Close after a success; True when a trial closed it. An answer to a call sent
        before the breaker opened proves little, so it leaves an open breaker open."""
        was = self.state
        if was == "trial":
            self.state = "closed"
        return was == "trial"


@dataclass(slots=True)
class Admission:
    """What an admitted request holds until it settles: for each windowed scope the counter
    key (its window) and the tokens reserved there; 0 each when ``enforced`` is False (it
    was admitted without the store, fail-open)."""

    holds: tuple[Hold, ...]
    enforced: bool
    settled: bool = False


class Budgets:
    """The app's budget guard-rails: scopes, caps, reservations, settles, the writer."""

    def __init__(self, store: CounterStore, metrics: ProxyMetrics, log: Any, *,
                 cool_down: float = 5.0, max_pending_keys: int = 10_000,
                 batch_keys: int = 256, flush_timeout: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        if max_pending_keys < 1 or batch_keys < 1:
            raise ValueError("max_pending_keys and batch_keys must be at least 1")
        self.guard = BudgetGuard(store, clock)
        self.metrics = metrics
        self.log = log
        self.breaker = Breaker(cool_down)
        self._max_keys = max_pending_keys
        self._batch_keys = batch_keys
        self._flush_timeout = flush_timeout
        self._pending: dict[str, Spend] = {}  # insertion order: oldest counter first
        self._batch: tuple[str, dict[str, Spend]] | None = None  # sent, not acknowledged
        self._writer: asyncio.Task[None] | None = None
        self._trial: asyncio.TimerHandle | None = None
        self._closed = False
        self._dropping = False

    @staticmethod
    def scopes(entry: ModelEntry, caller: Caller) -> list[Scope]:
        out: list[Scope] = []
        model = entry.budgets
        if model is not None:
            out.append(Scope(f"model:{entry.model_name}", model))
        key = caller.budgets
        if key is not None:
            out.append(Scope(f"key:{caller.name}", key))
        return out

    @staticmethod
    def request_cap(scopes: Sequence[Scope]) -> int | None:
        return BudgetGuard.request_cap(scopes)

    # -- the request's side ------------------------------------------------------------
    async def admit(self, scopes: Sequence[Scope], reserve: int = 0) -> Admission:
        """Reserve ``reserve`` tokens (the request's largest possible cost) in the current
        window of each windowed scope, or raise a 429 when that does not fit in one of
        them. With the store unavailable the request is admitted unchecked."""
        holds = self.guard.holds(scopes, reserve)
        if not holds:
            return Admission((), enforced=True)
        if not self.breaker.allows():
            self._went_on()
            return Admission(_unheld(holds), enforced=False)
        try:
            rejection = await self.guard.reserve(holds)
        except STORE_ERRORS as exc:
            self._store_failed("admit", exc)
            return Admission(_unheld(holds), enforced=False)
        if rejection is not None:
            self._reject(rejection)
        return Admission(holds, enforced=True)

    def settle(self, admission: Admission, spent: int) -> None:
        """Replace the admission's reservations by ``spent`` tokens. Returns at once: the
        write is queued for the background writer. A second settle of the same admission
        is ignored (it would count the request twice)."""
        if spent < 0:
            raise ValueError(f"spent is a token count, not {spent}")
        if admission.settled:
            return
        admission.settled = True
        spends = {h.key: Spend(spent - h.reserved, spent, h.ttl_seconds)
                  for h in admission.holds}
        spends = {k: s for k, s in spends.items() if s.delta or s.spent}
        if not spends:
            return
        if self._closed:  # nothing writes any more
            self._dropped(sum(s.spent for s in spends.values()))
            return
        for key, spend in spends.items():
            self._queue(key, spend)
        if self.breaker.allows():
            self._start_writer()
        else:
            self._went_on()

    async def flush(self, within: float | None = None) -> bool:
        """Wait (at most ``within`` s, default ``flush_timeout``) for the writer to write
        what is queued; True when all of it is in the store, False when some waits for the
        store to answer again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._flush_timeout if within is None else within)
        while self._pending or self._batch is not None:
            writer = self._writer
            if writer is None or writer.done():
                if self.breaker.state == "open":
                    return False
                writer = self._start_writer()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait({writer}, timeout=remaining)
        return True

    async def aclose(self) -> None:
        """Write what is queued (one last try even with the breaker open, bounded by
        ``flush_timeout``), count and log what could not be, and close the store."""
        if self._closed:
            return
        self._closed = True
        if self._trial is not None:
            self._trial.cancel()
            self._trial = None
        if self._pending or self._batch is not None:
            self.breaker.start_trial(force=True)
            written = await self.flush()
            writer = self._writer
            if writer is not None and not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            if not written:
                left = [*self._pending.values(), *(self._batch[1].values() if self._batch
                                                   else ())]
                self.log.warning("budget_spend_lost", counters=len(left),
                                 tokens=sum(s.spent for s in left))
                self._dropped(sum(s.spent for s in left))
        await self.guard.store.aclose()

    # -- the interface before reservations (kept until every caller settles) -----------
    async def record(self, scopes: Sequence[Scope], tokens: int) -> None:
        """Add a finished request's tokens to its scopes' windows, with no reservation to
        release, and wait (bounded) for the write, as callers of ``admit(scopes)`` expect."""
        if tokens <= 0:
            return
        self.settle(Admission(self.guard.holds(scopes, 0), enforced=False), tokens)
        await self.flush()

    # -- the writer ----------------------------------------------------------------------
    def _queue(self, key: str, spend: Spend) -> None:
        old = self._pending.get(key)
        if old is not None:
            self._pending[key] = old.merged(spend)
            return
        if len(self._pending) + len(self._batch[1] if self._batch else ()) >= self._max_keys:
            if not self._pending:  # everything queued is in the batch being retried
                self._dropped(spend.spent)
                return
            oldest = next(iter(self._pending))
            self._dropped(self._pending.pop(oldest).spent)
        self._pending[key] = spend
        self._gauge()

    def _start_writer(self) -> asyncio.Task[None]:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return self._writer

    def _next_batch(self) -> tuple[str, dict[str, Spend]] | None:
        # A batch keeps its id until the store acknowledges it, so that a retry after a
        # lost reply is recognised and not applied twice.
        if self._batch is None and self._pending:
            keys = list(itertools.islice(self._pending, self._batch_keys))
            self._batch = (uuid.uuid4().hex, {k: self._pending.pop(k) for k in keys})
        return self._batch

    async def _write(self) -> None:
        store = self.guard.store
        try:
            if self.breaker.state == "trial" and not (self._pending or self._batch):
                if not await store.ping():
                    raise ConnectionError("the budget store did not answer the ping")
                self._store_answered()
            while self.breaker.state != "open" and (batch := self._next_batch()) is not None:
                await store.settle(*batch)
                self._batch = None
                self._store_answered()
                self._gauge()
        except STORE_ERRORS as exc:
            self._store_failed("settle", exc)

    def _try_store(self) -> None:
        self._trial = None
        if self._closed:
            return
        if self.breaker.start_trial():
            self._start_writer()
        elif self.breaker.state == "open":  # its cool-down was restarted
            self._schedule_trial()

    def _schedule_trial(self) -> None:
        if self._closed or self._trial is not None:
            return
        self._trial = asyncio.get_running_loop().call_later(self.breaker.trial_in(),
                                                            self._try_store)

    # -- bookkeeping ---------------------------------------------------------------------
    def _reject(self, rejection: Rejection) -> NoReturn:
        self.metrics.budget_rejections.labels(rejection.scope).inc()
        wants = (f", and this request may use up to {rejection.reserve} more"
                 if rejection.reserve else "")
        raise ProxyError(
            429,
            f"token budget of {rejection.scope} is spent: {rejection.used} of "
            f"{rejection.limit} tokens in this {rejection.window_seconds} s window are "
            f"spent or held by running requests{wants}; retry after "
            f"{rejection.retry_after} s",
            type_="rate_limit_error", code="budget_exceeded",
            headers={"Retry-After": str(rejection.retry_after)},
        )

    def _store_failed(self, action: str, exc: Exception) -> None:
        self.metrics.budget_store_errors.inc()
        self.log.warning("budget_store_failed", action=action, error=type(exc).__name__,
                         detail=str(exc)[:200])
        if self.breaker.failed():
            self.metrics.budget_store_breaker_open.set(1)
            self.log.warning("budget_store_breaker_open", cool_down=self.breaker.cool_down)
        self._schedule_trial()

    def _store_answered(self) -> None:
        if self.breaker.succeeded():
            self.metrics.budget_store_breaker_open.set(0)
            self._dropping = False
            self.log.info("budget_store_recovered", pending=len(self._pending))

    def _went_on(self) -> None:
        """Count a step done without the store; make sure a trial is coming."""
        self.metrics.budget_store_errors.inc()
        if self.breaker.state == "open":
            self._schedule_trial()

    def _dropped(self, tokens: int) -> None:
        self.metrics.budget_spend_dropped.inc(max(0, tokens))
        if not self._dropping:  # once per outage: the counter has the rest
            self._dropping = True
            self.log.warning("budget_spend_dropped", max_pending_keys=self._max_keys)

    def _gauge(self) -> None:
        keys = self._pending.keys() | (self._batch[1].keys() if self._batch else set())
        self.metrics.budget_spend_pending.set(len(keys))


def _unheld(holds: tuple[Hold, ...]) -> tuple[Hold, ...]:
    return tuple(dataclasses.replace(h, reserved=0) for h in holds)
