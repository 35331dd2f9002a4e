"""Upstream faults, each against a fake upstream that misbehaves on purpose."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, Script, words
from tests.hardening.proxies import LoopProbe, read_stream
from tests.proxy.conftest import Proxy

PROMPT = [{"role": "user", "content": "How many apples?"}]
NEVER_HALT = {"policy": "consistency:window=1000"}
# Answers that keep changing: the plateau policy does not halt before a fault.
RESTLESS = [(0, "1"), (40, "2"), (80, "3")]


async def post(proxy: Proxy, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"{proxy.url}/chat/completions", json=body)


async def stream(proxy: Proxy, body: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """(reasoning, content, decoded events incl. "[DONE]") of a streamed request."""
    reasoning, content, events, _ = await read_stream(proxy, body)
    return reasoning, content, events


def decision_of(events: list[Any]) -> dict[str, Any]:
    decision: dict[str, Any] = events[-2]["thinkstop"]
    return decision


# -- before the first byte ------------------------------------------------------------
@pytest.mark.parametrize(("upstream_status", "status", "code"), [
    (400, 400, "upstream_rejected_request"),  # the caller's request: passed on
    (422, 422, "upstream_rejected_request"),
    (429, 429, "upstream_rate_limited"),
    (500, 502, "upstream_error"),
    (503, 502, "upstream_error"),  # retried once first (see below)
])
@pytest.mark.parametrize("streaming", [False, True])
async def test_upstream_status_before_first_byte(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer,
    upstream_status: int, status: int, code: str, streaming: bool,
) -> None:
    proxy, _ = hardened
    fake.reset(Script(fail_main=upstream_status))
    reply = await post(proxy, {"model": "chat", "messages": PROMPT, "stream": streaming})
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["code"] == code and set(error) >= {"message", "type", "code", "param"}
    retried = upstream_status == 503  # only 502/503/504 and connection failures are retried
    assert fake.stats.main_failures == (2 if retried else 1)


async def test_upstream_rejecting_our_key_is_502_not_401(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    reply = await post(hardened[0], {"model": "wrongkey", "messages": PROMPT})
    assert reply.status_code == 502  # the caller's key was fine; ours was not
    assert reply.json()["error"]["code"] == "upstream_auth_failed"


async def test_retry_before_first_byte_recovers(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(50), fail_main=503, fail_main_times=1))
    _, content, _ = await stream(hardened[0], {"model": "chat", "messages": PROMPT,
                                               "thinkstop": NEVER_HALT})
    assert content == "The answer is 42."
    assert fake.stats.main_failures == 1 and fake.stats.main_streams == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused_is_502(hardened: tuple[Proxy, LoopProbe],
                                         streaming: bool) -> None:
    started = time.perf_counter()
    reply = await post(hardened[0], {"model": "dead", "messages": PROMPT, "stream": streaming})
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_unreachable"
    assert time.perf_counter() - started < 3


@pytest.mark.parametrize("streaming", [False, True])
async def test_no_reply_in_time_is_504(hardened: tuple[Proxy, LoopProbe],
                                       fake: FakeReasoningServer, streaming: bool) -> None:
    fake.reset(Script(main_delay=5.0))  # "chat" allows 1 s per read
    started = time.perf_counter()
    reply = await post(hardened[0], {"model": "chat", "messages": PROMPT, "stream": streaming})
    assert reply.status_code == 504
    assert reply.json()["error"]["code"] == "upstream_timeout"
    assert time.perf_counter() - started < 3
    assert fake.wait(lambda s: s.closed_before_reply == 1 and s.open_requests == 0, 2)


# -- during the reasoning: a forced answer from the reasoning so far -------------------
@pytest.mark.parametrize("fault", [
    # 41 tokens arrive; the forced answer snaps back over the last, maybe partial, word
    {"drop_after": 41},  # connection cut
    {"malformed_after": 41},  # a line that is not JSON
    {"stall_after": 41},  # silence past the read timeout (1 s)
])
async def test_broken_main_stream_gets_a_forced_answer(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, fault: dict[str, Any]
) -> None:
    fake.reset(Script(reasoning=words(300), probe_answers=RESTLESS, **fault))
    reasoning, content, events = await stream(
        hardened[0], {"model": "chat", "messages": PROMPT,
                      "stream_options": {"include_usage": True}})
    decision = decision_of(events)
    assert content == "Final answer: 2."  # the model's continuation from ~40 tokens
    assert decision["halted"] and decision["reason"] == "upstream_error"
    assert decision["faults"] == ["main_stream_failed"]
    assert decision["strategy"] == "reask"
    assert reasoning == "".join(fake.script.reasoning[:decision["reasoning_tokens"]])
    continuation = fake.stats.of_kind("continuation")[0]
    assert continuation.reasoning_tokens == decision["reasoning_tokens"] > 0


async def test_broken_main_stream_forced_answer_whole(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(300), probe_answers=RESTLESS, drop_after=41))
    reply = await post(hardened[0], {"model": "raw", "messages": PROMPT})
    assert reply.status_code == 200
    data = reply.json()
    assert data["choices"][0]["message"]["content"] == "Final answer: 2."
    assert data["thinkstop"]["reason"] == "upstream_error"


async def test_drop_during_the_answer_is_an_in_band_error(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    fake.reset(Script(reasoning=words(60), drop_in_answer_after=2))
    _, content, events = await stream(hardened[0], {"model": "chat", "messages": PROMPT,
                                                    "thinkstop": NEVER_HALT})
    assert content == "The answer"  # what arrived, then an explicit error: no silent cut
    assert events[-2]["error"]["type"] == "upstream_error"


# -- probes ---------------------------------------------------------------------------
@pytest.mark.parametrize("probe_fault", [{"probe_delay": 30.0}, {"fail_probes": 500}])
@pytest.mark.parametrize("max_tokens", [None, 150])
async def test_unavailable_probes_leave_the_stream_unmonitored_under_max_tokens(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer,
    probe_fault: dict[str, Any], max_tokens: int | None,
) -> None:
    fake.reset(Script(reasoning=words(300), token_delay=0.002, **probe_fault))
    override = {} if max_tokens is None else {"thinkstop": {"max_tokens": max_tokens}}
    started = time.perf_counter()
    _, content, events = await stream(
        hardened[0], {"model": "chat", "messages": PROMPT, **override})
    elapsed = time.perf_counter() - started
    decision = decision_of(events)
    assert decision["probes_unavailable"] is True and "probes_unavailable" in decision["faults"]
    assert decision["probes"] >= 1 and decision["probes_failed"] == decision["probes"]
    assert elapsed < 2.5  # probes hanging 30 s never held the stream (0.3 s probe timeout)
    if max_tokens is None:
        assert decision["reason"] == "natural" and content == "The answer is 42."
        assert decision["reasoning_tokens"] == 300
    else:  # the guard-rail holds without any probe
        assert decision["reason"] == "max_tokens"
        # cut at max_tokens, then snapped back over a word it may have split
        assert decision["reasoning_tokens"] + decision["cut_snapped_tokens"] == max_tokens
        assert decision["cut_snapped_tokens"] <= 1
        assert content.startswith("Final answer:")
    assert fake.wait(lambda s: s.open_requests == 0, 2)


# -- continuation ---------------------------------------------------------------------
async def test_continuation_failure_falls_back_to_the_next_strategy(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    fake.reset(Script.overthinking(total=400, token_delay=0.001))
    fake.script.fail_continuations = 1
    _, content, events = await stream(hardened[0], {"model": "prefill", "messages": PROMPT})
    decision = decision_of(events)
    assert content == "Final answer: 42."
    assert decision["strategy"] == "reask"
    assert decision["faults"] == ["continuation_failed:prefill"]
    assert fake.stats.continuation_requests == 2


async def test_last_resort_reruns_the_request(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    # The raw-completion upstream has one strategy; when it fails, the model is asked
    # again from the start (its second reasoning hidden) and its own answer is passed on.
    fake.reset(Script.overthinking(total=300, token_delay=0.001))
    fake.script.fail_continuations = 1
    _, content, events = await stream(hardened[0], {"model": "raw", "messages": PROMPT,
                                                    "stream_options": {"include_usage": True}})
    decision = decision_of(events)
    assert content == "The answer is 41."
    assert decision["strategy"] == "rerun"
    assert decision["faults"] == ["continuation_failed:raw"]
    assert fake.stats.main_streams == 2
    # The re-run's reasoning was paid for: it is in the usage.
    assert events[-2]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 300


async def test_every_fallback_failing_is_an_in_band_error(
    hardened: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    # raw fails; the re-run passes the 50-token budget of `fixed:budget=50` and is cut.
    fake.reset(Script(reasoning=words(300), fail_continuations=1))
    _, content, events = await stream(hardened[0], {"model": "raw", "messages": PROMPT,
                                                    "thinkstop": {"policy": "fixed:budget=50"}})
    assert content == ""
    assert events[-2]["error"]["type"] == "upstream_error"
    assert fake.wait(lambda s: s.open_requests == 0, 2)
