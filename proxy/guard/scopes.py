"""Which budgets a request answers to, and what happens at their limits.

A request belongs to up to two scopes: its model (``model_list[].budgets``, scope
``model:<model_name>``) and its caller's key (``client_keys[].budgets``, scope
``key:<name>``). The tightest ``max_reasoning_tokens`` of the two caps the request's
reasoning (the decision says ``reason: "budget_cap"`` when that cut is what stopped it);
a spent ``tokens_per_window`` in either is a 429 naming the scope, never the key.

Counters are in memory, or in Redis when ``redis_url`` is set (shared by replicas). If
the store fails, requests go on (fail open: the per-request cap still holds, the window
is not enforced) and the failure is logged and counted in ``thinkstop_budget_store_errors``;
an outage of the budget store should not take every app behind the proxy down with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thinkstop.proxy.config import ModelEntry
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.budgets import (
    BudgetGuard,
    CounterStore,
    MemoryCounterStore,
    Scope,
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


class Budgets:
    """The app's budget guard-rails: scopes, caps, window checks, spending records."""

    def __init__(self, store: CounterStore, metrics: ProxyMetrics, log: Any) -> None:
        self.guard = BudgetGuard(store)
        self.metrics = metrics
        self.log = log

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

    async def admit(self, scopes: Sequence[Scope]) -> None:
        """Raise a 429 when a scope's window is spent."""
        if not any(s.limits.tokens_per_window is not None for s in scopes):
            return
        try:
            rejection = await self.guard.check(scopes)
        except STORE_ERRORS as exc:
            self._store_failed("check", exc)
            return
        if rejection is None:
            return
        self.metrics.budget_rejections.labels(rejection.scope).inc()
        window = next(s.limits.window_seconds for s in scopes if s.name == rejection.scope)
        raise ProxyError(
            429,
            f"token budget of {rejection.scope} is spent: {rejection.used} of "
            f"{rejection.limit} tokens in this {window} s window; retry after "
            f"{rejection.retry_after} s",
            type_="rate_limit_error", code="budget_exceeded",
            headers={"Retry-After": str(rejection.retry_after)},
        )

    async def record(self, scopes: Sequence[Scope], tokens: int) -> None:
        """Add a finished request's tokens (every upstream call) to its scopes' windows."""
        try:
            await self.guard.record(scopes, tokens)
        except STORE_ERRORS as exc:
            self._store_failed("record", exc)

    def _store_failed(self, action: str, exc: Exception) -> None:
        self.metrics.budget_store_errors.inc()
        self.log.warning("budget_store_failed", action=action, error=type(exc).__name__,
                         detail=str(exc)[:200])

    async def aclose(self) -> None:
        await self.guard.store.aclose()
