"""A client that leaves at any point: everything the request opened is closed within a
second, and nothing (task, connection, run object) is left behind."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, FakeStats, Script, words
from tests.hardening.proxies import LoopProbe
from tests.proxy.conftest import Proxy
from thinkstop.proxy.engine.run import HaltingRun

PROMPT = [{"role": "user", "content": "How many apples?"}]


def live_runs() -> int:
    gc.collect()
    return sum(isinstance(o, HaltingRun) for o in gc.get_objects())


async def settle(check: Callable[[], bool], within: float = 1.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


async def consume(proxy: Proxy, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        if not body.get("stream"):
            await http.post(f"{proxy.url}/chat/completions", json=body)
            return
        async with http.stream("POST", f"{proxy.url}/chat/completions", json=body) as reply:
            async for _ in reply.aiter_lines():
                pass


PHASES: dict[str, tuple[Script, dict[str, Any], Callable[[FakeStats], bool],
                        Callable[[FakeStats], bool]]] = {
    # name: (script, request fields, leave once, then the upstream must show)
    "waiting_for_first_byte": (
        Script(main_delay=10.0), {"stream": True},
        lambda s: s.main_streams == 0 and s.open_requests == 1,
        lambda s: s.closed_before_reply == 1),
    "waiting_for_whole_reply": (
        Script(main_delay=10.0), {"stream": False},
        lambda s: s.open_requests == 1,
        lambda s: s.closed_before_reply == 1),
    "mid_reasoning_probes_hanging": (
        Script(reasoning=words(3000), token_delay=0.003, probe_delay=10.0), {"stream": True},
        lambda s: s.probe_requests >= 2,
        lambda s: s.streams_closed_early == 1 and s.probes_cancelled == s.probe_requests),
    "mid_reasoning_whole_reply": (
        Script(reasoning=words(3000), token_delay=0.003, probe_delay=10.0), {"stream": False},
        lambda s: s.probe_requests >= 2,
        lambda s: s.streams_closed_early == 1 and s.probes_cancelled == s.probe_requests),
    "mid_continuation": (
        dataclasses.replace(Script.overthinking(total=400, token_delay=0.001),
                            continuation_delay=10.0), {"stream": True},
        lambda s: s.continuation_requests == 1,
        lambda s: s.continuations_closed_early == 1),
}


@pytest.mark.parametrize("phase", list(PHASES))
async def test_client_leaving_closes_everything(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, phase: str
) -> None:
    proxy, server = hardened
    script, fields, ready, closed = PHASES[phase]
    # "chat" times a silent upstream out after 1 s: use "prefill" (no timeout) here.
    body = {"model": "prefill", "messages": PROMPT, **fields}
    await consume(proxy, {"model": "prefill", "messages": PROMPT, "stream": True,
                          "thinkstop": {"enabled": False}})  # warm: pools, lazy imports
    baseline_tasks, baseline_runs = server.tasks(), live_runs()
    fake.reset(script)
    client = asyncio.create_task(consume(proxy, body))
    assert await settle(lambda: ready(fake.stats), 5.0), phase
    client.cancel()  # the client goes away
    left = time.monotonic()
    await asyncio.gather(client, return_exceptions=True)
    assert await settle(lambda: closed(fake.stats) and fake.stats.open_requests == 0), (
        phase, fake.stats)
    assert await settle(lambda: server.tasks() <= baseline_tasks), (server.tasks(),
                                                                    baseline_tasks)
    assert time.monotonic() - left < 1.0
    assert await settle(lambda: live_runs() <= baseline_runs)
