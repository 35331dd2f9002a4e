"""Concurrent probes: launched at chunk boundaries, bounded, observed in boundary order.

The main stream never waits for a probe: :meth:`ProbeRunner.launch` starts a task and
returns at once (or skips the probe when ``max_in_flight`` are already running), and a
callback tells the halting loop when results are ready. A probe that fails or times out
(``timeout`` per probe; None asks the upstream, which for an in-process model knows its
own speed, and falls back to 10 s) is logged and skipped; it is never fatal to the request. After
``failure_limit`` failures in a row the runner marks probes ``unavailable`` and launches
no more: the request goes on unmonitored, under its ``max_tokens`` cut.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thinkstop.proxy.upstreams.base import ChatRequest, ProbeResult, Upstream, Usage

DEFAULT_TIMEOUT = 10.0  # seconds: a network round trip plus a short generation


@dataclass(frozen=True, slots=True)
class Marks:
    """What the reasoning looked like at a boundary (see :class:`Observation`)."""

    hedged: bool = False
    cue: bool = False
    repetition: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One finished probe; ``result`` is None when it failed."""

    seq: int
    tokens: int  # reasoning tokens at the boundary the probe was taken from
    marks: Marks
    result: ProbeResult | None


class ProbeSlots:
    """A replica-wide cap on probes in flight, shared by every request.

    Under load, probes are the work to shed first: a probe that would pass the cap is
    skipped (counted as shed), so the replica's CPU and upstream connections go to the
    main streams clients wait on, never to a queue of probes. ``capacity`` None: no cap.
    """

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.in_use = 0

    def try_take(self) -> bool:
        if self.capacity is not None and self.in_use >= self.capacity:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use = max(0, self.in_use - 1)


class ProbeRunner:
    """Runs the probes of one request."""

    def __init__(
        self,
        upstream: Upstream,
        request: ChatRequest,
        *,
        max_tokens: int,
        max_in_flight: int,
        timeout: float | None,
        notify: Callable[[], None],
        log: Any = None,
        failure_limit: int = 3,
        slots: ProbeSlots | None = None,
    ) -> None:
        self.upstream = upstream
        self.request = request
        self.max_tokens = max_tokens
        self.max_in_flight = max(1, max_in_flight)
        self.timeout = timeout
        self._notify = notify
        self._log = log
        self._tasks: dict[int, asyncio.Task[ProbeOutcome]] = {}
        self._finished: dict[int, ProbeOutcome] = {}
        self._next_seq = 0
        self._next_ready = 0
        self.launched = 0
        self.failed = 0
        self.skipped = 0
        self.shed = 0  # of the skipped: the replica was at its cap (ProbeSlots)
        self.slots = slots
        self.usage = Usage()
        self.seconds = 0.0  # wall time spent in finished probes
        self.failure_limit = max(1, failure_limit)
        self.failures_in_a_row = 0

    def timeout_for_next(self) -> float:
        """Seconds the next probe may take."""
        if self.timeout is not None:
            return self.timeout
        estimate = getattr(self.upstream, "probe_timeout", None)
        if callable(estimate):
            return float(estimate(self.max_tokens))
        return DEFAULT_TIMEOUT

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def unavailable(self) -> bool:
        """Probes failed ``failure_limit`` times in a row: probing is off."""
        return self.failures_in_a_row >= self.failure_limit

    def launch(self, tokens: int, reasoning: str, marks: Marks) -> bool:
        """Start a probe from ``reasoning``; False (and counted) when at the bound."""
        if self.unavailable:
            return False
        if self.in_flight >= self.max_in_flight:
            self.skipped += 1
            return False
        if self.slots is not None and not self.slots.try_take():
            self.skipped += 1
            self.shed += 1
            return False
        seq = self._next_seq
        self._next_seq += 1
        self.launched += 1
        task = asyncio.ensure_future(self._run(seq, tokens, reasoning, marks))
        self._tasks[seq] = task
        task.add_done_callback(functools.partial(self._done, seq))
        return True

    async def _run(self, seq: int, tokens: int, reasoning: str, marks: Marks) -> ProbeOutcome:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                self.upstream.probe(self.request, reasoning, self.max_tokens),
                self.timeout_for_next(),
            )
        except Exception as exc:  # any probe failure is skippable by design; logged here
            self.failed += 1
            self.failures_in_a_row += 1
            if self._log is not None:
                self._log.warning("probe_failed", tokens=tokens, error=type(exc).__name__,
                                  detail=str(exc)[:200])
                if self.failures_in_a_row == self.failure_limit:
                    self._log.warning("probes_unavailable", failures=self.failures_in_a_row)
            return ProbeOutcome(seq, tokens, marks, None)
        self.failures_in_a_row = 0
        self.usage = self.usage + result.usage
        self.seconds += time.perf_counter() - started
        return ProbeOutcome(seq, tokens, marks, result)

    def _done(self, seq: int, task: asyncio.Task[ProbeOutcome]) -> None:
        self._tasks.pop(seq, None)
        if self.slots is not None:
            self.slots.release()
        if task.cancelled():
            self._finished[seq] = ProbeOutcome(seq, 0, Marks(), None)
        else:
            self._finished[seq] = task.result()
        self._notify()

    def ready(self) -> list[ProbeOutcome]:
        """Finished probes, in boundary order, up to the first one still running."""
        out: list[ProbeOutcome] = []
        while self._next_ready in self._finished:
            out.append(self._finished.pop(self._next_ready))
            self._next_ready += 1
        return out

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()

    async def close(self) -> None:
        """Cancel every running probe and wait until they are gone."""
        self.cancel_all()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)

    async def drain(self, grace: float) -> None:
        """Let probes already running finish (their tokens were spent), then cancel."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, grace))
        await self.close()
