"""What the stream limits of issue 15 (rows 5 and 6) cost and save, measured in-process:

- SSE line reading: httpx's ``aiter_lines`` (what the native adapters used) against
  :func:`thinkstop.proxy.upstreams.http_sse.bounded_lines` (the line limit), in µs per
  line, over a realistic stream of chat chunks in 64 KB reads;
- event-loop stall while one 3.9 MiB message without spaces is counted: inline (as
  before) and through :func:`thinkstop.proxy.engine.offload.off_loop`, as the longest a
  10 ms heartbeat on the same loop was late.

Run::

    python -m thinkstop.benchmarks.perf.stream_limits [--lines 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from thinkstop.proxy.engine.offload import off_loop
from thinkstop.proxy.upstreams.http_sse import MAX_LINE_BYTES, bounded_lines
from thinkstop.proxy.upstreams.tokens import default_counter


def _stream_bytes(lines: int) -> bytes:
    chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1,
             "model": "m", "choices": [{"index": 0, "delta": {"reasoning_content": " so"},
                                        "finish_reason": None}]}
    return (f"data: {json.dumps(chunk)}\n\n" * lines).encode()


async def _reads(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _httpx_lines(data: bytes) -> int:
    response = httpx.Response(200, content=_reads(data))
    return sum([1 async for line in response.aiter_lines() if line.startswith("data:")])


async def _bounded(data: bytes) -> int:
    return sum([1 async for line in bounded_lines(_reads(data), MAX_LINE_BYTES)
                if line.startswith(b"data:")])


async def _per_line(read: Callable[[bytes], Awaitable[int]], data: bytes,
                    lines: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        assert await read(data) == lines
        best = min(best, time.perf_counter() - started)
    return best / lines * 1e6


async def _stall(count: Callable[[], Awaitable[int]]) -> float:
    worst = 0.0
    done = asyncio.Event()

    async def beat() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - started - 0.01)

    task = asyncio.ensure_future(beat())
    await asyncio.sleep(0.05)
    await count()
    await asyncio.sleep(0.05)
    done.set()
    await task
    return worst


async def main(lines: int) -> dict[str, float]:
    data = _stream_bytes(lines)
    counter = default_counter()
    text = "a" * int(3.9 * 1024 * 1024)

    async def inline() -> int:
        return counter(text)

    async def offloaded() -> int:
        return await off_loop(lambda: counter(text), len(text))

    return {
        "aiter_lines_us_per_line": round(await _per_line(_httpx_lines, data, lines), 3),
        "bounded_lines_us_per_line": round(await _per_line(_bounded, data, lines), 3),
        "stall_inline_ms": round(await _stall(inline) * 1000, 1),
        "stall_off_loop_ms": round(await _stall(offloaded) * 1000, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.lines)), indent=2))
