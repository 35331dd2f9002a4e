"""The llama.cpp engine on the real Gemma 3 270M: template, tokenizer, cache reuse,
abandoning a long prompt, log probabilities that do not depend on the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from thinkstop.proxy.upstreams.local.engine import GREEDY, LocalEngine, Token
from thinkstop.proxy.upstreams.local.model_files import GEMMA3_PARTS
from thinkstop.proxy.upstreams.local.prompted import PREFILL, PROMPTED_SYSTEM

pytestmark = pytest.mark.model

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def keep(_tokens: list[Token], _text: str) -> bool:
    return False


def test_the_test_model_is_the_pinned_release(model_file: Path) -> None:
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == GEMMA3_PARTS.sha256


def test_a_model_without_native_thinking_is_prompted_and_prefilled(engine: LocalEngine) -> None:
    assert engine.thinking == "prompted"
    prompt = engine.render(MESSAGES)
    assert prompt.opened and prompt.text.endswith("<start_of_turn>model\n" + PREFILL)
    assert PROMPTED_SYSTEM in prompt.text
    turn = engine.tokenize("<start_of_turn>", special=True)
    assert len(turn) == 1 and prompt.tokens.count(turn[0]) == 2  # user (with system), model
    assert prompt.tokens[0] == engine.tokenize(engine.bos_token, special=True)[0]


def test_count_tokens_is_the_models_tokenizer(engine: LocalEngine) -> None:
    assert engine.count_tokens("Hello, world") == len(engine.tokenize("Hello, world"))
    assert engine.count_tokens("<end_of_turn>") > 1  # client text never becomes a control token
    assert engine.detokenize(engine.tokenize("Hello, world")) == "Hello, world"
    assert engine.eog_ids and engine.tokenize("<end_of_turn>", special=True)[0] in engine.eog_ids


def test_the_cache_reuses_the_common_prefix(engine: LocalEngine) -> None:
    a = list(engine.render(MESSAGES).tokens)
    b = engine.tokenize("First, 2 plus 3")
    c = engine.tokenize("Let me count on my fingers")
    engine.generate(a, max_tokens=1, sampling=GREEDY, on_tokens=keep)
    grown = engine.generate(a + b, max_tokens=1, sampling=GREEDY, on_tokens=keep)
    assert (grown.reused, grown.evaluated) == (len(a), len(b))
    branched = engine.generate(a + c, max_tokens=1, sampling=GREEDY, on_tokens=keep)
    assert (branched.reused, branched.evaluated) == (len(a), len(c))
    again = engine.generate(a + c, max_tokens=1, sampling=GREEDY, on_tokens=keep)
    assert again.evaluated == 1  # all held: one token re-run for its logits


def test_logprobs_are_the_same_with_and_without_the_cache(
    engine: LocalEngine, model_file: Path
) -> None:
    a = list(engine.render(MESSAGES).tokens) + engine.tokenize("Then 17 plus 25 equals")

    def run(on: LocalEngine) -> tuple[list[Token], int]:
        got: list[Token] = []

        def record(tokens: list[Token], _text: str) -> bool:
            got.extend(tokens)
            return False

        done = on.generate(a, max_tokens=3, sampling=GREEDY, on_tokens=record, top_n=4)
        return got, done.evaluated

    engine.generate(a, max_tokens=1, sampling=GREEDY, on_tokens=keep)
    warm, evaluated = run(engine)
    assert evaluated == 1
    fresh = LocalEngine.load(model_file, n_ctx=512, n_threads=2, chat_template="gemma",
                             cache_ram_mib=0)
    try:
        cold, evaluated = run(fresh)
    finally:
        fresh.close()
    assert evaluated == len(a)
    assert [t.id for t in warm] == [t.id for t in cold]
    for x, y in zip(warm, cold, strict=True):
        # llama.cpp runs a lone token and a batch through different quantised kernels
        # (measured here: up to 0.06 nats apart on this Q4 model); the choices agree.
        assert x.logprob == pytest.approx(y.logprob, abs=0.15)
        # near-ties among the lower candidates may swap places; shared ones agree
        theirs = {c.token: c.logprob for c in y.top}
        for c in x.top:
            if c.token in theirs:
                assert c.logprob == pytest.approx(theirs[c.token], abs=0.15)


def test_a_long_prompt_can_be_abandoned_between_batches(engine: LocalEngine) -> None:
    tokens = engine.tokenize("word " * 1500)
    checks = iter([False, False, True])
    result = engine.generate(tokens, max_tokens=5, sampling=GREEDY, on_tokens=keep,
                             should_stop=lambda: next(checks, True))
    assert result.finish == "stopped" and result.generated == 0


def test_a_banned_token_is_never_sampled(engine: LocalEngine) -> None:
    prompt = list(engine.render(MESSAGES).tokens)
    first: list[Token] = []

    def grab(tokens: list[Token], _text: str) -> bool:
        first.extend(tokens)
        return True

    engine.generate(prompt, max_tokens=1, sampling=GREEDY, on_tokens=grab)
    favourite = first[0].id
    first.clear()
    engine.generate(prompt, max_tokens=1, sampling=GREEDY, on_tokens=grab, ban=[favourite])
    assert first and first[0].id != favourite


def test_native_thinking_is_neither_prompted_nor_prefilled(model_file: Path) -> None:
    native = LocalEngine.load(model_file, n_ctx=256, n_threads=2, thinking="native",
                              chat_template="gemma")
    try:
        prompt = native.render(MESSAGES)
        assert not prompt.opened and PROMPTED_SYSTEM not in prompt.text
        assert prompt.text.endswith("<start_of_turn>model\n")
    finally:
        native.close()
