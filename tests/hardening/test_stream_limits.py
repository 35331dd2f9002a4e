"""An upstream that sends too much at once (issue 15, row 6): one endless SSE line is a
clear upstream error once it passes the line limit, never a 10 MB frame for the client;
one huge delta is split, so its tokens are counted and the reasoning cap holds inside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, Script, words
from tests.hardening.proxies import ENV, LoopProbe, models, read_stream, running
from tests.proxy.conftest import Proxy
from thinkstop.proxy.config import parse_config
from thinkstop.proxy.upstreams.base import UpstreamError
from thinkstop.proxy.upstreams.http_sse import MAX_LINE_BYTES, bounded_lines

PROMPT = [{"role": "user", "content": "How many apples?"}]
NEVER_HALT = {"policy": "consistency:window=1000"}
RESTLESS = [(0, "1"), (20, "2"), (80, "3")]  # the plateau policy does not halt early
HUGE = "a" * 10_000_000  # one 10 MB delta: a line ten times the default limit
BIG_FRAME = 256 * 1024  # no frame the client gets comes near the 10 MB line


@pytest.fixture(scope="module")
def limits(fake_upstream: FakeReasoningServer) -> Iterator[tuple[Proxy, LoopProbe]]:
    """The hardening models plus ``lite`` (the litellm adapter, whose provider SDK reads
    the SSE lines itself)."""
    base = fake_upstream.base_url
    entries = models(base)
    entries.append({"model_name": "lite", "thinkstop": {"chunk_tokens": 32,
                                                        "probe_timeout": 0.3},
                    "litellm_params": {"model": "openai/fake", "api_base": base,
                                       "adapter": "litellm", "timeout": 5.0,
                                       "api_key": "os.environ/FAKE_UPSTREAM_KEY"}})
    cfg = parse_config({"model_list": entries}, environ=ENV)
    with running(cfg) as pair:
        yield pair


async def stream(proxy: Proxy, body: dict[str, Any]) -> tuple[str, str, list[Any], int]:
    """(reasoning, content, decoded events incl. "[DONE]", largest frame in bytes)."""
    return await read_stream(proxy, body, read_timeout=30)


def decision_of(events: list[Any]) -> dict[str, Any]:
    decision: dict[str, Any] = events[-2]["thinkstop"]
    return decision


@pytest.mark.parametrize("model", ["chat", "raw", "lite"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_an_oversized_first_line_is_a_502(
    limits: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, model: str, streaming: bool
) -> None:
    fake.reset(Script(reasoning=words(50), big_reasoning=(0, HUGE)))
    async with httpx.AsyncClient(timeout=30) as http:
        reply = await http.post(f"{limits[0].url}/chat/completions",
                                json={"model": model, "messages": PROMPT, "stream": streaming})
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["code"] == "upstream_oversized" and error["type"] == "upstream_error"
    assert len(reply.content) < 4096  # the line is not echoed back
    assert fake.wait(lambda s: s.open_requests == 0, 5)  # the upstream stream was closed


@pytest.mark.parametrize("model", ["chat", "raw"])
async def test_an_oversized_line_mid_reasoning_gets_a_forced_answer(
    limits: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, model: str
) -> None:
    # As for any broken main stream: the answer is written from the reasoning so far.
    fake.reset(Script(reasoning=words(300), probe_answers=RESTLESS, big_reasoning=(41, HUGE)))
    reasoning, content, events, largest = await stream(
        limits[0], {"model": model, "messages": PROMPT})
    decision = decision_of(events)
    assert decision["halted"] and decision["reason"] == "upstream_error"
    assert decision["faults"] == ["main_stream_failed"]
    assert content == "Final answer: 2."
    assert "aaaa" not in reasoning and largest < BIG_FRAME
    assert decision["reasoning_tokens"] <= 41
    assert fake.wait(lambda s: s.open_requests == 0, 5)


@pytest.mark.parametrize("model", ["chat", "lite"])
async def test_an_oversized_line_in_the_answer_is_an_in_band_error(
    limits: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, model: str
) -> None:
    fake.reset(Script(reasoning=words(60), big_answer=(2, HUGE)))
    _, content, events, largest = await stream(
        limits[0], {"model": model, "messages": PROMPT, "thinkstop": NEVER_HALT})
    assert content == "The answer"  # what came before the line, then the error
    assert events[-2]["error"]["code"] == "upstream_oversized"
    assert largest < BIG_FRAME


def test_the_line_limit_is_a_setting() -> None:
    cfg = parse_config({"model_list": models("http://127.0.0.1:9/v1"),
                        "general_settings": {"upstream_max_line_bytes": 65536}}, environ=ENV)
    entry = cfg.model_list[0]
    assert cfg.general_settings.upstream_max_line_bytes == 65536
    assert cfg.upstream_params(entry)["max_line_bytes"] == 65536
    assert parse_config({"model_list": models("http://x/v1")}, environ=ENV
                        ).general_settings.upstream_max_line_bytes == MAX_LINE_BYTES
    own = {**entry.litellm_params, "max_line_bytes": 4096}  # the model's own wins
    assert cfg.upstream_params(entry.model_copy(update={"litellm_params": own})
                               )["max_line_bytes"] == 4096


# -- one huge delta under a reasoning cap ----------------------------------------------
BIG = " word" * 40_000  # 200,000 characters, 40,000 tokens in one delta
CAP = 1000
SLACK = 64  # tokens: one event's worth of " word" (chunk_events.MAX_EVENT_CHARS = 256)


@pytest.mark.parametrize("model", ["chat", "raw", "lite"])
async def test_a_huge_delta_is_split_and_cut_at_the_reasoning_cap(
    limits: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, model: str
) -> None:
    fake.reset(Script(reasoning=words(200), big_reasoning=(10, BIG)))
    reasoning, content, events, largest = await stream(
        limits[0], {"model": model, "messages": PROMPT,
                    "thinkstop": {**NEVER_HALT, "max_tokens": CAP}})
    decision = decision_of(events)
    assert decision["halted"] and decision["reason"] == "max_tokens"
    # Counted by its tokens and cut inside the delta: past the cap by one slice at most.
    used = decision["reasoning_tokens"] + decision["cut_snapped_tokens"]
    assert CAP <= used <= CAP + SLACK
    assert len(reasoning) <= (CAP + SLACK) * len(" word")
    assert largest < BIG_FRAME
    assert content.startswith("Final answer:")


async def test_a_huge_answer_delta_arrives_whole_in_bounded_frames(
    limits: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(40), big_answer=(1, BIG)))
    _, content, events, largest = await stream(
        limits[0], {"model": "raw", "messages": PROMPT, "thinkstop": NEVER_HALT})
    assert content == "The" + BIG + " is 42."  # split, then joined again in order
    # ... in frames no larger than the loop's read-ahead (64 events of 256 characters)
    assert largest < 64 * 1024
    assert decision_of(events)["reason"] == "natural"


async def test_the_line_reader_keeps_every_line_end_and_its_limit() -> None:
    async def reads(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    got = [line async for line in bounded_lines(
        reads(b"data: a\r", b"\ndata: b\r\n\r\ndata: c\rdata: d\n\n", b"data: e"), 1024)]
    assert got == [b"data: a", b"data: b", b"data: c", b"data: d", b"data: e"]
    with pytest.raises(UpstreamError) as failure:  # no line end yet, already past it
        _ = [line async for line in bounded_lines(reads(b"a" * 700, b"a" * 700), 1024)]
    assert failure.value.kind == "oversized"
