"""``LocalUpstream`` on the real Gemma 3 270M: the async protocol, probes with honest log
probabilities, KV reuse, continuation, cancellation and a free event loop."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from thinkstop.proxy.upstreams.base import (
    ChatRequest,
    StreamEvent,
    Upstream,
    UpstreamConfigError,
    UpstreamError,
)
from thinkstop.proxy.upstreams.local.adapter import LocalUpstream
from thinkstop.proxy.upstreams.local.engine import GREEDY, LocalEngine, Token
from thinkstop.proxy.upstreams.prompts import ANSWER_CLOSE, probe_suffix
from thinkstop.proxy.upstreams.thinking import closing

pytestmark = pytest.mark.model

QUESTION = "I have 3 apples and eat 1. How many apples are left?"
REQUEST = ChatRequest(model="local/gemma3-270m", messages=[{"role": "user", "content": QUESTION}])


def make(params: dict[str, object]) -> LocalUpstream:
    """The adapter as the registry builds it from a config entry."""
    return LocalUpstream.from_params(str(params["model"]), params)


def with_params(**params: object) -> ChatRequest:
    return ChatRequest(model=REQUEST.model, messages=REQUEST.messages, params=dict(params))


async def collect(stream: object) -> list[StreamEvent]:
    return [event async for event in stream]  # type: ignore[attr-defined]


def text_of(events: list[StreamEvent], kind: str) -> str:
    return "".join(e.text for e in events if e.kind == kind)


async def test_it_is_an_upstream(upstream: LocalUpstream) -> None:
    assert isinstance(upstream, Upstream)
    assert upstream.capabilities.logprobs
    assert "raw" in upstream.capabilities.continuations


async def test_stream_reasoning_with_exact_usage(upstream: LocalUpstream) -> None:
    events = await collect(upstream.stream(with_params(max_tokens=40)))
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["finish", "usage"] and kinds[0] == "reasoning"
    assert text_of(events, "reasoning").strip()
    usage = events[-1].usage
    assert usage is not None
    reasoning_tokens = sum(e.tokens or 0 for e in events if e.kind == "reasoning")
    content_tokens = sum(e.tokens or 0 for e in events if e.kind == "content")
    assert usage.reasoning_tokens == reasoning_tokens > 0
    assert usage.completion_tokens == reasoning_tokens + content_tokens
    prompt = len(upstream.engine.render(REQUEST.messages).tokens)
    assert usage.prompt_tokens >= prompt


async def test_probe_logprob_is_the_models_own(upstream: LocalUpstream, model_file: Path) -> None:
    engine = upstream.engine
    reasoning = "I start with 3 apples. Eating 1 leaves 3 - 1 = 2 apples.\n"
    result = await upstream.probe(REQUEST, reasoning, 6)
    assert result.text and result.logprob is not None and result.alternatives
    context = [
        *engine.render(REQUEST.messages).tokens,
        *engine.tokenize(reasoning),
        *engine.tokenize(probe_suffix(reasoning), special=True),
    ]
    # An independent greedy run on a fresh engine (no cache, no phases): the probe's
    # answer is the model's greedy answer, and its log probability the sum of the
    # model's own, renormalised without the end tokens where ending was not allowed.
    fresh = LocalEngine.load(
        model_file, n_ctx=512, n_threads=2, chat_template="gemma", cache_ram_mib=0
    )
    try:
        got: list[Token] = []

        def grab(tokens: list[Token], _text: str) -> bool:
            got.extend(tokens)
            return False

        fresh.generate(
            context,
            max_tokens=6,
            sampling=GREEDY,
            on_tokens=grab,
            top_n=12,
            ban=sorted(fresh.eog_ids),
        )
    finally:
        fresh.close()
    text, parts = "", []
    for token in got:
        piece = token.raw.decode("utf-8", errors="replace")
        if (text.strip() and "\n" in piece) or ANSWER_CLOSE in text:
            break
        blank = not text.strip()
        shift = 0.0
        if blank:
            p_end = sum(math.exp(c.logprob) for c in token.top if c.token in engine.eog_ids)
            shift = -math.log1p(-p_end)
        parts.append((len(text), token.logprob + shift))
        text += piece
    # the answer ends at </answer>; the closing tag's own tokens are not part of it
    cut = text.find(ANSWER_CLOSE) if ANSWER_CLOSE in text else len(text)
    assert result.text == text[:cut].strip()
    total = sum(lp for at, lp in parts if at < cut)
    assert result.logprob == pytest.approx(total, abs=0.3)
    # each alternative is one of the model's top tokens at the first answer position
    # (the fresh run lists 12: near-ties among the lower ones may swap with the cache)
    decisive = next(t for t in got if t.raw.decode("utf-8", "replace").strip())
    candidates = {c.text.strip() for c in decisive.top}
    assert set(result.alternatives) <= {
        (text[: text.index(decisive.raw.decode())] + c).strip() for c in candidates
    }


async def test_a_probe_mid_stream_costs_only_its_own_tokens(upstream: LocalUpstream) -> None:
    engine = upstream.engine
    stream = upstream.stream(with_params(max_tokens=60))
    reasoning, tokens = "", 0
    async for event in stream:
        assert event.kind == "reasoning"
        reasoning, tokens = reasoning + event.text, tokens + (event.tokens or 0)
        if tokens >= 8:
            break
    result = await upstream.probe(REQUEST, reasoning, 4)
    suffix = engine.tokenize(probe_suffix(reasoning), special=True)
    # the suffix, plus the few tokens the main stream generated past the cut before it
    # paused: the prompt and the reasoning are not run again
    usage = result.usage
    uncached = usage.prompt_tokens - usage.cached_prompt_tokens
    assert len(suffix) <= uncached <= len(suffix) + 4
    rest = [event async for event in stream]
    usage = rest[-1].usage
    assert usage is not None
    prompt = len(engine.render(REQUEST.messages).tokens)
    # the main stream resumed from the cache: a handful of tokens re-run, not the prompt
    assert prompt <= usage.prompt_tokens <= prompt + 8


async def test_continuation_writes_the_answer_from_truncated_reasoning(
    upstream: LocalUpstream,
) -> None:
    events = await collect(upstream.stream(with_params(max_tokens=12)))
    assert events[-2].finish_reason == "length" and not text_of(events, "content")
    reasoning = text_of(events, "reasoning")
    answer = await collect(upstream.continue_answer(REQUEST, reasoning, "raw"))
    assert [e.kind for e in answer][-2:] == ["finish", "usage"]
    assert all(e.kind != "reasoning" for e in answer)
    usage = answer[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    tag = upstream.engine.tokenize(closing(reasoning), special=True)
    # prompt and reasoning came from the cache: the closing tag and a few re-run tokens
    uncached = usage.prompt_tokens - usage.cached_prompt_tokens
    assert len(tag) <= uncached <= len(tag) + 4


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
    assert stopped_at - start <= prompt + 3  # at most the prompt: nothing ran after close


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
    model_file: Path,
) -> None:
    up = make(
        {
            "model": "local/mine",
            "gguf": str(model_file),
            "n_ctx": 512,
            "n_threads": 2,
            "chat_template": "gemma",
        }
    )
    try:
        assert up.name == "local/mine" and up.engine.n_ctx == 512
        assert up.count_tokens("hello world") == up.engine.count_tokens("hello world")
    finally:
        await up.aclose()
    with pytest.raises(UpstreamConfigError, match="unknown local model"):
        make({"model": "local/nope"})
    with pytest.raises(UpstreamConfigError, match="start with"):
        make({"model": "openai/gpt"})
    with pytest.raises(UpstreamConfigError, match="gguf file not found"):
        make({"model": "local/x", "gguf": "/nonexistent.gguf"})
    with pytest.raises(UpstreamConfigError, match="thinking must be"):
        make({"model": "local/x", "gguf": str(model_file), "thinking": "x"})
    with pytest.raises(UpstreamConfigError, match="unknown chat_template"):
        make({"model": "local/x", "gguf": str(model_file), "chat_template": "nope"})


async def test_a_prompt_longer_than_the_context_is_an_upstream_error(engine: LocalEngine) -> None:
    up = make({"model": "local/gemma3-270m", "n_ctx": 256, "selftest": False})
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
    up = make({"model": "local/gemma3-270m", "n_ctx": 512, "seed": 3})
    try:
        assert up.engine.path == engine.path and up.sampling.seed == 3
        # the self-test measured this machine's speed, and the probe timeout follows it
        # (any positive speed: a loaded CI machine can be very slow)
        assert up.engine.speed.gen_tps > 0
        quick = up.probe_timeout(16)
        up.engine.speed.gen_tps /= 20
        assert up.probe_timeout(16) > quick
        events = await collect(up.stream(with_params(max_tokens=5)))
        assert events[-1].usage is not None and events[-1].usage.completion_tokens == 5
    finally:
        await up.aclose()
