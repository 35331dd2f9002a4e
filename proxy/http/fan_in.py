"""Several runs at once (``n > 1``): their streams merged as items arrive, or their
results awaited together; a failure in one stops them all.

For one stream (the usual case) :func:`fan_in` reads it directly, without a task, so a
plain request pays nothing for this. For several, the merged queue is bounded
(:data:`BUFFER_PER_SOURCE`): a client that reads slowly holds every run back (each run's
own read-ahead is bounded too), rather than letting them fill memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
BUFFER_PER_SOURCE = 8  # items read ahead of the reader, per stream


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


@dataclass(frozen=True, slots=True)
class Ended:
    """Stream ``index`` has no more items."""

    index: int


@dataclass(frozen=True, slots=True)
class Item(Generic[T]):
    index: int
    value: T


async def fan_in(sources: Sequence[AsyncGenerator[T, None]]
                 ) -> AsyncGenerator[Item[T] | Ended, None]:
    """Items of ``sources`` as they come, tagged with their stream's index, and one
    :class:`Ended` per stream; the first error of any stream stops them all and is raised.
    Every source is closed however this ends."""
    if len(sources) == 1:
        source = sources[0]
        try:
            async for value in source:
                yield Item(0, value)
            yield Ended(0)
        finally:
            await source.aclose()
        return
    queue: asyncio.Queue[Item[T] | Ended | _Failed] = asyncio.Queue(
        maxsize=BUFFER_PER_SOURCE * len(sources))

    async def pump(index: int, source: AsyncGenerator[T, None]) -> None:
        try:
            async for value in source:
                await queue.put(Item(index, value))  # waits while the reader is behind
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(_Failed(exc))
            return
        await queue.put(Ended(index))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(sources)]
    try:
        remaining = len(sources)
        while remaining:
            got = await queue.get()
            if isinstance(got, _Failed):
                raise got.error
            if isinstance(got, Ended):
                remaining -= 1
            yield got
    finally:
        await _stop(tasks)
        for source in sources:
            await source.aclose()


async def run_all(work: Sequence[Awaitable[T]]) -> list[T]:
    """Await all of ``work`` concurrently; on the first failure cancel the rest and raise."""
    if len(work) == 1:
        return [await work[0]]
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        pending = [t for t in tasks if not t.done()]
        await _stop(pending)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    return [task.result() for task in tasks]


async def _stop(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
