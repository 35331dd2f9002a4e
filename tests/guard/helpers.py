"""Budget guard test helpers: a log that keeps its events, a store that fails on demand,
metric readings, scopes with fresh names."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from thinkstop.proxy.config import BudgetSettings
from thinkstop.proxy.guard.budgets import Hold, MemoryCounterStore, Scope, Spend
from thinkstop.proxy.observe.metrics import ProxyMetrics


class Log:
    """Keeps (level, event, fields) of every call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.events.append(("warning", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.events.append(("info", event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self.events.append(("debug", event, fields))

    def names(self) -> list[str]:
        return [event for _, event, _ in self.events]


class FlakyStore(MemoryCounterStore):
    """The memory store, failing like a store that is down while ``down`` is set (a fake at
    the CounterStore seam; Redis itself is never mocked)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.silent_ping = False  # ping answers False instead of raising
        self.calls: list[str] = []

    def _gate(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise ConnectionError(f"{name}: store down")

    async def reserve(self, holds: Sequence[Hold]) -> tuple[int, int] | None:
        self._gate("reserve")
        return await super().reserve(holds)

    async def settle(self, batch: str, spends: Mapping[str, Spend]) -> None:
        self._gate("settle")
        await super().settle(batch, spends)

    async def ping(self) -> bool:
        if self.silent_ping:
            self.calls.append("ping")
            return False
        self._gate("ping")
        return True


def sample(metrics: ProxyMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


def scope(limit: int | None = 1000, window: int = 3600, name: str | None = None) -> Scope:
    return Scope(name or f"key:t-{uuid.uuid4().hex[:8]}",
                 BudgetSettings(tokens_per_window=limit, window_seconds=window))


async def until(predicate: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``within`` seconds pass (False)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
