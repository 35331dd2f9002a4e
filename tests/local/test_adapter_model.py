"""``LocalUpstream`` on the real SmolLM2: the async protocol, probes with honest log
probabilities, KV reuse, continuation, cancellation and a free event loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from proxy.local.adapter import LocalUpstream
from proxy.local.engine import LocalEngine
from proxy.local.think import CLOSE_SUFFIX, PROBE_SUFFIX, close_text
from proxy.upstreams.base import ChatRequest, StreamEvent, Upstream, UpstreamError
from proxy.upstreams.factory import UpstreamConfigError

from .reference import reference_probe

pytestmark = pytest.mark.model

QUESTION = "I have 3 apples and eat 1. How many apples are left?"
REQUEST = ChatRequest(model="local/smollm2-135m", messages=[{"role": "user", "content": QUESTION}])


def with_params(**params: object) -> ChatRequest:
    return ChatRequest(model=REQUEST.model, messages=REQUEST.messages, params=dict(params))


async def collect(stream: object) -> list[StreamEvent]:
    return [event async for event in stream]  # type: ignore[attr-defined]


def text_of(events: list[StreamEvent], kind: str) -> str:
    return "".join(e.text for e in events if e.kind == kind)


async def test_it_is_an_upstream(upstream: LocalUpstream) -> None:
    assert isinstance(upstream, Upstream)
    assert upstream.capabilities.logprobs and upstream.capabilities.exact_token_counts
    assert "raw" in upstream.capabilities.continuations


async def test_stream_reasoning_then_answer_with_exact_usage(upstream: LocalUpstream) -> None:
    events = await collect(upstream.stream(REQUEST))
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["finish", "usage"] and kinds[0] == "reasoning"
    assert text_of(events, "reasoning").strip() and text_of(events, "content").strip()
    usage = events[-1].usage
    assert usage is not None
    reasoning_tokens = sum(e.tokens or 0 for e in events if e.kind == "reasoning")
    content_tokens = sum(e.tokens or 0 for e in events if e.kind == "content")
    assert usage.reasoning_tokens == reasoning_tokens > 0
    assert usage.completion_tokens == reasoning_tokens + content_tokens
    # the prompt, plus the closing tag when the model ended its turn inside <think>
    # (SmolLM2 does, greedily: the forced close is part of what this test covers)
    forced = upstream.engine.tokenize(
        close_text(text_of(events, "reasoning"), CLOSE_SUFFIX), special=True
    )
    prompt = len(upstream.engine.render(REQUEST.messages).tokens)
    assert usage.prompt_tokens in (prompt, prompt + len(forced))


async def test_probe_logprob_is_the_models_own(upstream: LocalUpstream, smollm2_file: Path) -> None:
    engine = upstream.engine
    reasoning = "I start with 3 apples. Eating 1 leaves 3 - 1 = 2 apples.\n"
    engine.evaluate(list(engine.render(REQUEST.messages).tokens))  # partial reuse path
    result = await upstream.probe(REQUEST, reasoning, 6)
    context = [
        *engine.render(REQUEST.messages).tokens,
        *engine.tokenize(reasoning),
        *engine.tokenize(close_text(reasoning, PROBE_SUFFIX), special=True),
    ]
    text, logprob, decisive = reference_probe(smollm2_file, context, 6)
    assert result.text == text and text
    assert result.logprob == pytest.approx(logprob, abs=2e-3)
    assert result.alternatives
    top = sorted(decisive, key=decisive.__getitem__, reverse=True)[:10]
    for alt, value in result.alternatives.items():  # each is a top token at the decisive step
        matches = [
            decisive[t] for t in top if engine.piece(t).decode(errors="replace").strip() == alt
        ]
        assert any(abs(value - v) < 2e-3 for v in matches), alt
    assert result.usage.prompt_tokens == len(context) - len(engine.render(REQUEST.messages).tokens)


async def test_a_probe_mid_stream_costs_only_its_own_tokens(upstream: LocalUpstream) -> None:
    engine = upstream.engine
    stream = upstream.stream(with_params(max_tokens=60))
    reasoning, tokens = "", 0
    async for event in stream:
        assert event.kind == "reasoning"
        reasoning, tokens = reasoning + event.text, tokens + (event.tokens or 0)
        if tokens >= 8:
            break
    before = engine.stats.evaluated
    result = await upstream.probe(REQUEST, reasoning, 4)
    suffix = engine.tokenize(close_text(reasoning, PROBE_SUFFIX), special=True)
    # the suffix, plus the last generated token (sampled, not evaluated yet): the prompt
    # and the reasoning are not run again
    assert result.usage.prompt_tokens == len(suffix) + 1
    spent = engine.stats.evaluated - before
    answer = result.usage.completion_tokens  # the last sampled token may not need a run
    assert spent - result.usage.prompt_tokens in (answer, answer - 1)
    before = engine.stats.evaluated
    await stream.__anext__()  # the main stream resumes from its cache: one token
    assert engine.stats.evaluated - before == 1
    await stream.aclose()


async def test_continuation_writes_the_answer_from_truncated_reasoning(
    upstream: LocalUpstream,
) -> None:
    events = await collect(upstream.stream(with_params(max_tokens=12)))
    assert events[-2].finish_reason == "length" and not text_of(events, "content")
    reasoning = text_of(events, "reasoning")
    answer = await collect(upstream.continue_answer(REQUEST, reasoning, "raw"))
    assert text_of(answer, "content").strip()
    assert [e.kind for e in answer][-2:] == ["finish", "usage"]
    usage = answer[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    closing = upstream.engine.tokenize(close_text(reasoning, "</think>\n\n"), special=True)
    # prompt and reasoning came from the cache: only the closing tag (+ the unevaluated
    # last reasoning token) had to run
    assert len(closing) <= usage.prompt_tokens <= len(closing) + 1


async def test_unsupported_continuation_is_refused(upstream: LocalUpstream) -> None:
    with pytest.raises(ValueError, match="reask"):
        upstream.continue_answer(REQUEST, "", "reask")


async def test_aclose_stops_generation_at_once(upstream: LocalUpstream) -> None:
    engine = upstream.engine
    start = engine.stats.evaluated
    stream = upstream.stream(with_params(max_tokens=500))
    for _ in range(3):
        await stream.__anext__()
    await stream.aclose()
    await asyncio.sleep(0.05)  # let the queued close run
    stopped_at = engine.stats.evaluated
    await asyncio.sleep(0.3)
    assert engine.stats.evaluated == stopped_at
    prompt = len(engine.render(REQUEST.messages).tokens)
    assert stopped_at - start <= prompt + 3  # the prompt and the tokens consumed


async def test_cancelling_the_consumer_stops_generation(upstream: LocalUpstream) -> None:
    engine = upstream.engine
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in upstream.stream(with_params(max_tokens=500)):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    stopped_at = engine.stats.evaluated
    await asyncio.sleep(0.3)
    assert engine.stats.evaluated == stopped_at


async def test_the_event_loop_is_never_blocked(upstream: LocalUpstream) -> None:
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    events = await collect(upstream.stream(with_params(max_tokens=120)))
    elapsed = time.perf_counter() - started
    done = True
    await tick
    assert len(events) > 20
    assert max(gaps) < min(0.25, elapsed / 3), (max(gaps), elapsed)


async def test_concurrent_requests_take_turns(upstream: LocalUpstream) -> None:
    order: list[str] = []

    async def run(tag: str) -> None:
        async for _ in upstream.stream(with_params(max_tokens=15)):
            order.append(tag)

    await asyncio.gather(run("a"), run("b"))
    first = order[0]
    switch = order.index("b" if first == "a" else "a")
    assert set(order[:switch]) == {first} and first not in order[switch:]


async def test_from_params_serves_a_gguf_path_and_rejects_unknown_names(
    smollm2_file: Path,
) -> None:
    up = LocalUpstream.from_params(
        {"model": "local/mine", "gguf": str(smollm2_file), "n_ctx": 512, "n_threads": 2}
    )
    try:
        assert up.name == "local/mine" and up.engine.n_ctx == 512
        assert up.count_tokens("hello world") == up.engine.count_tokens("hello world")
    finally:
        await up.aclose()
    with pytest.raises(UpstreamConfigError, match="unknown local model"):
        LocalUpstream.from_params({"model": "local/nope"})
    with pytest.raises(UpstreamConfigError, match="start with"):
        LocalUpstream.from_params({"model": "openai/gpt"})
    with pytest.raises(UpstreamConfigError, match="gguf file not found"):
        LocalUpstream.from_params({"model": "local/x", "gguf": "/nonexistent.gguf"})
    with pytest.raises(UpstreamConfigError, match="thinking must be"):
        LocalUpstream.from_params({"model": "local/x", "gguf": str(smollm2_file), "thinking": "x"})


async def test_a_prompt_longer_than_the_context_is_an_upstream_error(engine: LocalEngine) -> None:
    up = LocalUpstream.from_params({"model": "local/smollm2-135m", "n_ctx": 256})
    long = ChatRequest(REQUEST.model, [{"role": "user", "content": "apple " * 400}])
    try:
        with pytest.raises(UpstreamError) as err:
            await collect(up.stream(long))
        assert err.value.status_code == 400 and "context" in err.value.message
        with pytest.raises(UpstreamError):
            await up.probe(long, "", 4)
    finally:
        await up.aclose()


async def test_from_params_knows_the_test_model_by_name(engine: LocalEngine) -> None:
    up = LocalUpstream.from_params({"model": "local/smollm2-135m", "n_ctx": 512, "seed": 3})
    try:
        assert up.engine.path == engine.path and up.sampling.seed == 3
        events = await collect(up.stream(with_params(max_tokens=5)))
        assert events[-1].usage is not None and events[-1].usage.completion_tokens == 5
    finally:
        await up.aclose()
