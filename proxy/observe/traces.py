"""Where shadow-mode traces go: one ``thinkstop.trace/1`` line per shadowed request.

- :class:`FileTraceSink` (``trace_dir``): JSONL files written by a background thread, so
  the event loop never waits on the disk. Each process writes its own files
  (``traces-<host>-<pid>-<start>.jsonl``), so several workers or replicas can share one
  folder; a file is closed and a new one started past ``max_bytes`` or ``max_seconds``.
- :class:`RedisTraceSink` (``trace_sink: redis://...``): ``XADD`` to a Redis stream
  (capped with ``MAXLEN ~``), for teams that already collect events there.

Both drop a line rather than block a request when they fall behind (counted in
``dropped``), and ``close`` flushes what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

QUEUE_LINES = 10_000  # lines waiting at most; more are dropped (and counted), never waited on


class TraceSink(Protocol):
    """Takes one trace line (JSON, no newline) without waiting."""

    dropped: int

    def write(self, line: str) -> None: ...

    async def aclose(self) -> None: ...


class FileTraceSink:
    """Rotated JSONL files in ``folder``, written off the event loop (module docstring)."""

    def __init__(self, folder: Path, *, max_bytes: int = 64 * 1024 * 1024,
                 max_seconds: float = 3600.0) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.dropped = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_LINES)
        self._thread = threading.Thread(target=self._run, name="thinkstop-traces",
                                        daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def _name(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        host = socket.gethostname().split(".")[0] or "host"
        return self.folder / f"traces-{host}-{os.getpid()}-{stamp}.jsonl"

    def _run(self) -> None:
        handle = None
        opened = 0.0
        try:
            while True:
                line = self._queue.get()
                if line is None:
                    return
                if handle is None or (handle.tell() >= self.max_bytes
                                      or time.monotonic() - opened >= self.max_seconds):
                    if handle is not None:
                        handle.close()
                    handle = self._name().open("a", encoding="utf-8")
                    opened = time.monotonic()
                handle.write(line + "\n")
                handle.flush()  # a crash loses at most the line being written
        except OSError as exc:
            log.error("trace_sink_failed", error=str(exc)[:200], folder=str(self.folder))
        finally:
            if handle is not None:
                handle.close()

    async def aclose(self) -> None:
        with contextlib.suppress(queue.Full):  # a full queue: the thread still drains it
            self._queue.put(None, timeout=5)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)


class RedisTraceSink:
    """``XADD`` each line, in order, to the Redis stream ``key`` (``MAXLEN ~ max_len``),
    from one background task."""

    def __init__(self, url: str, *, key: str = "thinkstop:traces", max_len: int = 1_000_000,
                 client: Any = None) -> None:
        if client is None:
            try:
                import redis.asyncio as aioredis
            except ImportError as exc:  # the `redis` extra
                raise ValueError("trace_sink redis:// needs the redis package: "
                                 "pip install 'thinkstop[redis]'") from exc
            client = aioredis.from_url(url, socket_timeout=1.0)
        self._client = client
        self.key = key
        self.max_len = max_len
        self.dropped = 0
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LINES)
        self._worker: asyncio.Task[None] | None = None

    def write(self, line: str) -> None:
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._run())
        try:
            self._queue.put_nowait(line)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        while (line := await self._queue.get()) is not None:
            try:
                await self._client.xadd(self.key, {"trace": line}, maxlen=self.max_len,
                                        approximate=True)
            except Exception as exc:  # a store outage loses traces, never a request
                self.dropped += 1
                log.warning("trace_sink_failed", error=type(exc).__name__)

    async def aclose(self) -> None:
        if self._worker is not None:
            await self._queue.put(None)
            await asyncio.wait([self._worker], timeout=5)
        await self._client.aclose()


def open_sink(target: str, *, max_bytes: int = 64 * 1024 * 1024,
              max_seconds: float = 3600.0) -> TraceSink:
    """A sink for ``target``: ``redis://...`` (``rediss://``, ``unix://``) for a Redis
    stream, anything else a folder for JSONL files (rotated past ``max_bytes`` or
    ``max_seconds``)."""
    if target.startswith(("redis://", "rediss://", "unix://")):
        return RedisTraceSink(target)
    return FileTraceSink(Path(target).expanduser(), max_bytes=max_bytes,
                         max_seconds=max_seconds)
