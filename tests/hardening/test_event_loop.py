"""One huge message must not freeze the replica (issue 15, row 5): counting its tokens
(about three seconds of BPE for 3.9 MiB without a space) runs off the event loop, so a
heartbeat on the proxy's loop, and a small request beside it, stay on time.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.fakes import FakeReasoningServer, Script, words
from tests.hardening.proxies import LoopProbe
from tests.proxy.conftest import Proxy

HUGE = "a" * int(3.9 * 1024 * 1024)  # under the 4 MiB body limit, one "word"
SMALL = {"model": "chat", "messages": [{"role": "user", "content": "q"}],
         "thinkstop": {"enabled": False}}


async def heartbeat(period: float, stop: asyncio.Event) -> float:
    """The longest the loop was late waking this task, over its life."""
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(period)
        worst = max(worst, time.perf_counter() - started - period)
    return worst


async def test_a_huge_message_does_not_stall_the_loop(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    proxy, probe = hardened
    fake.reset(Script(reasoning=words(20)))
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.post(f"{proxy.url}/chat/completions", json=SMALL)).status_code == 200
        assert probe.loop is not None
        stop = asyncio.Event()  # set from this thread's loop, read in the proxy's: a flag
        beat = asyncio.run_coroutine_threadsafe(heartbeat(0.01, stop), probe.loop)
        huge = {**SMALL, "messages": [{"role": "user", "content": HUGE}]}
        big = asyncio.ensure_future(http.post(f"{proxy.url}/chat/completions", json=huge))
        await asyncio.sleep(0.3)  # the huge one is being counted now
        started = time.perf_counter()
        small = await http.post(f"{proxy.url}/chat/completions", json=SMALL)
        small_seconds = time.perf_counter() - started
        reply = await big
        probe.loop.call_soon_threadsafe(stop.set)
        worst = beat.result(5)
    assert reply.status_code == 200 and small.status_code == 200
    assert reply.json()["usage"]["prompt_tokens"] > 0
    # Reading and parsing 4 MB, and sending it on, still take the loop a few tens of ms.
    assert worst < 0.5, f"the event loop stalled {worst:.2f} s"
    assert small_seconds < 1.0, f"a small request took {small_seconds:.2f} s"
