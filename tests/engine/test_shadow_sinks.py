"""Shadow mode, below the HTTP edge: a shadowed run never halts, its trace line says where
the policy would have, and the sinks keep the lines (rotated files; a real Redis stream)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fakes import Script
from tests.fakes.memory_upstream import MemoryUpstream
from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.engine.shadow import (
    chosen_for_shadow,
    natural_answer,
    shadow_trace,
    would_have,
)
from thinkstop.proxy.observe.traces import FileTraceSink, RedisTraceSink
from thinkstop.proxy.upstreams.base import ChatRequest
from thinkstop.scheduler import create_policy, parse_traces

REQUEST = ChatRequest("memory/model", [{"role": "user", "content": "q"}])


async def shadowed(script: Script) -> tuple[HaltingRun, str, str]:
    run = HaltingRun(MemoryUpstream(script), REQUEST, create_policy("consistency:window=2"),
                     RunOptions(chunk_tokens=20, shadow=True, continuation="reask"))
    await run.start()
    reasoning, content = await run.collect()
    return run, reasoning, content


async def test_a_shadowed_run_never_halts_and_knows_where_it_would_have() -> None:
    script = Script.overthinking(total=300, settle_at=40, token_delay=0.001)
    run, reasoning, content = await shadowed(script)
    assert not run.result.halted and content == "The answer is 41."  # the model's own
    assert reasoning == script.text
    assert run.shadow_halt is not None and run.shadow_halt[1] == "consistent"
    would = would_have(run, "41")
    assert would.halted and would.changed_answer  # the early answer was 42, not 41
    assert would.saved_tokens > 0
    trace = shadow_trace(run, natural_answer(content), would, request_id="r1", model="m",
                         started=0.0)
    (parsed,) = parse_traces([trace.dumps()])
    assert parsed.expected is None and parsed.natural.answer == "41"
    assert parsed.meta is not None and parsed.meta["would_halt"]["reason"] == "consistent"
    assert [s.tokens for s in parsed.steps][:3] == [20, 40, 60]


def test_shadow_can_sample_a_share_of_requests() -> None:
    assert chosen_for_shadow(True) and not chosen_for_shadow(None)
    assert not chosen_for_shadow(False)
    assert chosen_for_shadow(0.05, draw=0.01) and not chosen_for_shadow(0.05, draw=0.5)


async def test_the_file_sink_rotates_and_loses_nothing(tmp_path: Path) -> None:
    sink = FileTraceSink(tmp_path / "traces", max_bytes=200)
    lines = [json.dumps({"n": i, "pad": "x" * 60}) for i in range(20)]
    for line in lines:
        sink.write(line)
    await sink.aclose()
    files = sorted((tmp_path / "traces").glob("traces-*.jsonl"))
    written = [line for f in files for line in f.read_text().splitlines()]
    assert written == lines and sink.dropped == 0
    # files may share a second's stamp: rotation appends to a new handle each time
    assert all(f.stat().st_size > 0 for f in files)


@pytest.mark.redis
async def test_the_redis_sink_appends_to_a_stream(redis_url: str) -> None:
    import redis.asyncio as aioredis

    sink = RedisTraceSink(redis_url, key="thinkstop:test-traces")
    for i in range(3):
        sink.write(json.dumps({"n": i}))
    await asyncio.sleep(0)
    await sink.aclose()
    client = aioredis.from_url(redis_url)
    try:
        entries = await client.xrange("thinkstop:test-traces")
        assert [json.loads(fields[b"trace"])["n"] for _, fields in entries] == [0, 1, 2]
    finally:
        await client.aclose()
