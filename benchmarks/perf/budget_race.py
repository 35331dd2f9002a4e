"""Budget windows under concurrency and with a hung store, against a real redis-server.

Issue 15, rows 8 and 9. The script starts its own redis-server on a free loopback port (no
persistence) and stops it at the end. Two measurements:

- Overshoot: ``--requests`` concurrent requests (default 50) arrive at a fresh window of
  ``--window`` tokens (default 20,000). Each may cost up to ``--max-cost`` tokens (default
  2,000), runs 10-50 ms, and spends 50-100 % of that. On 1 replica (one budget guard over
  Redis) and on 2 (two guards, two Redis clients, requests alternating between them).
  Before: check the window, then record the spend (what the proxy did until reservations:
  ``BudgetGuard.check`` and ``record``). After: reserve the largest cost at admission,
  settle the real spend (:class:`thinkstop.proxy.guard.scopes.Budgets`). Reported: tokens
  spent / window, and how many requests were admitted.
- Hung store: redis-server is SIGSTOPped, then ``--hung-requests`` requests run one after
  another; the time of their admission and of their spend's recording (check/record
  before, admit/settle after), medians, with the store's 1 s socket timeout. After, the
  first admission still pays the timeout (it is what opens the circuit breaker); the
  median shows the rest.

Run (about 20 s)::

    python -m thinkstop.benchmarks.perf.budget_race [--requests 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from thinkstop.proxy.config import BudgetSettings
from thinkstop.proxy.guard.budgets import BudgetGuard, RedisCounterStore, Scope
from thinkstop.proxy.guard.scopes import STORE_ERRORS, Budgets
from thinkstop.proxy.observe.metrics import ProxyMetrics
from thinkstop.proxy.testing import free_port


class RedisServer:
    """A redis-server of one's own on a free loopback port, that can be paused (SIGSTOP:
    it accepts connections and answers nothing, like a hung store) and resumed."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install "
                                    "redis-server)")
        self.binary = found
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="thinkstop-redis-")
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._dir.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def pause(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a stopped process holds SIGTERM
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class QuietLog:
    """The logger interface Budgets uses, saying nothing."""

    def warning(self, event: str, **fields: Any) -> None:
        pass

    info = debug = warning


# A request's life: admission (may raise the 429), its run, the recording of its spend.
Request = Callable[[int, int], Awaitable[bool]]


async def old_check(guard: BudgetGuard, scope: Scope) -> bool:
    """The admission before reservations: read the window; fail open on a store error."""
    with contextlib.suppress(*STORE_ERRORS):
        return await guard.check([scope]) is None
    return True


async def old_record(guard: BudgetGuard, scope: Scope, spent: int) -> None:
    """The recording before reservations: add the spend, awaited on the response path."""
    with contextlib.suppress(*STORE_ERRORS):
        await guard.record([scope], spent)


def before(guard: BudgetGuard, scope: Scope) -> Request:
    """Check, run, record: what the proxy did before reservations."""

    async def run(cost: int, spent: int) -> bool:
        if not await old_check(guard, scope):
            return False
        await asyncio.sleep(random.uniform(0.01, 0.05))
        await old_record(guard, scope, spent)
        return True

    return run


def after(budgets: Budgets, scope: Scope) -> Request:
    """Reserve the largest cost, run, settle the real spend."""
    from thinkstop.proxy.errors import ProxyError

    async def run(cost: int, spent: int) -> bool:
        try:
            admission = await budgets.admit([scope], cost)
        except ProxyError:
            return False
        await asyncio.sleep(random.uniform(0.01, 0.05))
        budgets.settle(admission, spent)
        return True

    return run


@dataclass(frozen=True, slots=True)
class Overshoot:
    style: str
    replicas: int
    admitted: int
    spent: int
    window: int

    @property
    def ratio(self) -> float:
        return self.spent / self.window


async def overshoot(url: str, style: str, replicas: int, args: argparse.Namespace
                    ) -> Overshoot:
    scope = Scope(f"key:race-{uuid.uuid4().hex[:8]}",
                  BudgetSettings(tokens_per_window=args.window, window_seconds=3600))
    stores = [RedisCounterStore(url) for _ in range(replicas)]
    budgets = [Budgets(s, ProxyMetrics(), QuietLog()) for s in stores]
    runs = [before(b.guard, scope) if style == "before" else after(b, scope) for b in budgets]
    spends = [random.randint(args.max_cost // 2, args.max_cost) for _ in range(args.requests)]
    try:
        admitted = await asyncio.gather(*(runs[i % replicas](args.max_cost, spent)
                                          for i, spent in enumerate(spends)))
        for b in budgets:
            await b.flush()
        spent = sum(s for s, ok in zip(spends, admitted, strict=True) if ok)
        counted = await budgets[0].guard.used(scope)
        assert counted == spent, (counted, spent)  # what the store holds is what was spent
        return Overshoot(style, replicas, sum(admitted), spent, args.window)
    finally:
        for b in budgets:
            await b.aclose()


async def hung(server: RedisServer, style: str, n: int) -> dict[str, list[float]]:
    """Seconds of admission and of recording, per request, with the store paused."""
    scope = Scope(f"key:hung-{uuid.uuid4().hex[:8]}",
                  BudgetSettings(tokens_per_window=10**9, window_seconds=3600))
    budgets = Budgets(RedisCounterStore(server.url, timeout=1.0), ProxyMetrics(), QuietLog())
    await budgets.guard.store.ping()  # connected before the pause, as a running proxy is
    out: dict[str, list[float]] = {"admit": [], "record": []}
    server.pause()
    try:
        for _ in range(n):
            started = time.perf_counter()
            if style == "before":
                await old_check(budgets.guard, scope)
                admitted = time.perf_counter()
                await old_record(budgets.guard, scope, 100)
            else:
                admission = await budgets.admit([scope], 500)
                admitted = time.perf_counter()
                budgets.settle(admission, 100)
            out["admit"].append(admitted - started)
            out["record"].append(time.perf_counter() - admitted)
    finally:
        server.resume()
        await budgets.aclose()
    return out


def report(races: list[Overshoot], latency: dict[str, dict[str, list[float]]],
           args: argparse.Namespace) -> str:
    lines = [f"overshoot: {args.requests} concurrent requests, window {args.window:,} tokens, "
             f"each up to {args.max_cost:,}"]
    for r in races:
        lines.append(f"  {r.style:<6} {r.replicas} replica{'s' if r.replicas > 1 else ' '}  "
                     f"spent/window {r.ratio:5.2f}x  ({r.spent:,} tokens, "
                     f"{r.admitted} admitted)")
    lines.append(f"hung store (SIGSTOP, 1 s socket timeout), {args.hung_requests} requests "
                 "one after another, medians")
    for style, times in latency.items():
        lines.append(f"  {style:<6} admission {statistics.median(times['admit']) * 1e3:8.2f} ms"
                     f"   recording {statistics.median(times['record']) * 1e3:8.2f} ms"
                     f"   (first admission {times['admit'][0] * 1e3:.0f} ms)")
    return "\n".join(lines)


async def measure(args: argparse.Namespace) -> tuple[list[Overshoot],
                                                      dict[str, dict[str, list[float]]]]:
    with RedisServer() as server:
        races = [await overshoot(server.url, style, replicas, args)
                 for style in ("before", "after") for replicas in (1, 2)]
        latency = {style: await hung(server, style, args.hung_requests)
                   for style in ("before", "after")}
    return races, latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkstop.benchmarks.perf.budget_race",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--window", type=int, default=20_000)
    parser.add_argument("--max-cost", type=int, default=2_000)
    parser.add_argument("--hung-requests", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    races, latency = asyncio.run(measure(args))
    print(report(races, latency, args))
    if args.json:
        figures = {
            "overshoot": [{"style": r.style, "replicas": r.replicas, "ratio": r.ratio,
                           "spent": r.spent, "admitted": r.admitted, "window": r.window}
                          for r in races],
            "hung_store_seconds": {
                style: {"admit_median": statistics.median(t["admit"]),
                        "record_median": statistics.median(t["record"]),
                        "admit": t["admit"], "record": t["record"]}
                for style, t in latency.items()},
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
