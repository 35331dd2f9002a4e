"""How long an upstream stream may keep the proxy waiting: for its first chunk, and
between two chunks.

The transport's read timeout (``litellm_params.timeout``, 600 s by default) bounds each
socket read, so an upstream that sends its headers and then nothing holds a request for
ten minutes, and one that sends SSE comments but no data holds it for ever.
:func:`within` bounds what the proxy really waits for, the next chunk:

- ``first_byte``: from sending the request to the first chunk (connect, queueing, prompt
  processing, and any reasoning the provider keeps to itself);
- ``idle``: from one chunk to the next.

Only the time spent waiting on the upstream counts: while the consumer holds a chunk (a
slow client, a halt), no clock runs. Past a deadline the stream fails as an
:class:`UpstreamError` of kind ``timeout``: a 504 ``upstream_timeout`` before the client's
reply has started, an in-band error after.

One timer per stream, re-armed only when it fires (not per chunk): an ``asyncio.timeout``
around every chunk cost about 10 µs apiece on these machines, a third of the proxy's whole
CPU per streamed token; this costs about 1 µs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from thinkstop.proxy.upstreams.base import UpstreamConfigError, UpstreamError

FIRST_BYTE_TIMEOUT: Final = 60.0  # seconds; general_settings.upstream_first_byte_seconds
IDLE_TIMEOUT: Final = 120.0  # seconds; general_settings.upstream_idle_seconds
# litellm_params keys that override the proxy-wide deadlines for one model.
FIRST_BYTE_KEY: Final = "first_byte_timeout"
IDLE_KEY: Final = "idle_timeout"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds an upstream stream may stay silent; None: no limit (the transport's read
    timeout still applies)."""

    first_byte: float | None = FIRST_BYTE_TIMEOUT
    idle: float | None = IDLE_TIMEOUT

    @classmethod
    def from_params(cls, model_name: str, params: Mapping[str, Any]) -> Deadlines:
        """A model entry's ``litellm_params.first_byte_timeout`` / ``idle_timeout`` (0 or
        null: no limit), else the defaults."""
        return cls(_seconds(model_name, params, FIRST_BYTE_KEY, FIRST_BYTE_TIMEOUT),
                   _seconds(model_name, params, IDLE_KEY, IDLE_TIMEOUT))


def _seconds(model_name: str, params: Mapping[str, Any], key: str,
             default: float) -> float | None:
    if key not in params:
        return default
    value = params[key]
    if value is None or value == 0:
        return None  # no limit, as asked
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UpstreamConfigError(f"{model_name}: litellm_params.{key}: seconds (a positive "
                                  f"number), or 0 or null for no limit; got {value!r}")
    return float(value)


class _Watch:
    """The stream's one timer: it cancels the waiting task once a wait passes its limit.

    Per chunk only the waiting task and the clock are noted (under 1 µs); the timer is
    re-armed when it fires, for what is left of the current wait.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None
        self.since: float | None = None  # when the current wait began; None: not waiting
        self.limit: float | None = None
        self.fired = False
        self.handle: asyncio.TimerHandle | None = None
        self.due = 0.0  # when the pending check runs (monotonic clock)

    def begin(self, limit: float) -> None:
        # The consumer may change task between chunks (the first is read while the
        # request opens, the rest by a pump task): note it on every wait.
        self.task = asyncio.current_task(self.loop)
        now = self.since = time.monotonic()
        if limit != self.limit:
            self.limit = limit
            if self.handle is not None and self.due > now + limit:
                self.handle.cancel()  # a shorter limit than the pending check's
                self.handle = None
        if self.handle is None:
            self._arm(limit)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _arm(self, delay: float) -> None:
        self.due = time.monotonic() + delay
        self.handle = self.loop.call_later(delay, self._check)

    def _check(self) -> None:
        self.handle = None
        since, limit = self.since, self.limit
        if since is None or limit is None or self.task is None:
            return  # not waiting now: the next wait arms a new check
        left = since + limit - time.monotonic()
        if left > 0:
            self._arm(left)
            return
        self.fired = True
        self.task.cancel()


async def within(chunks: AsyncGenerator[T, None], deadlines: Deadlines
                 ) -> AsyncGenerator[T, None]:
    """``chunks``, failing with an :class:`UpstreamError` (``timeout``) when the first
    one takes longer than ``deadlines.first_byte``, or any later one longer than
    ``deadlines.idle``. Closing this generator closes ``chunks``."""
    if deadlines.first_byte is None and deadlines.idle is None:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()
        return
    watch = _Watch()
    limit, what = deadlines.first_byte, "before its first chunk"
    try:
        while True:
            if limit is not None:
                watch.begin(limit)
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                task = watch.task
                # Ours only when our timer fired and nobody else cancelled the task too
                # (the asyncio.timeout rule).
                if watch.fired and task is not None and task.uncancel() == 0:
                    raise UpstreamError(f"upstream sent nothing for {limit:g} s {what}",
                                        kind="timeout") from None
                raise
            finally:
                watch.since = None
            yield chunk
            limit, what = deadlines.idle, "between two chunks"
    finally:
        watch.stop()
        await chunks.aclose()
