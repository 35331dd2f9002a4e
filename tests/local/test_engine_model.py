"""The llama.cpp engine on the real SmolLM2: template, tokenizer, KV reuse, stopping."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from proxy.local.engine import GenerationStopped, LocalEngine
from proxy.local.model_files import SMOLLM2_SHA256
from proxy.local.think import PREFILL, PROMPTED_SYSTEM

pytestmark = pytest.mark.model

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def test_smollm2_file_is_the_pinned_release(smollm2_file: Path) -> None:
    assert hashlib.sha256(smollm2_file.read_bytes()).hexdigest() == SMOLLM2_SHA256


def test_a_model_without_native_thinking_is_prompted_and_prefilled(engine: LocalEngine) -> None:
    assert engine.thinking == "prompted"
    prompt = engine.render(MESSAGES)
    assert prompt.opened and prompt.text.endswith("<|im_start|>assistant\n" + PREFILL)
    assert PROMPTED_SYSTEM in prompt.text
    im_start = engine.tokenize("<|im_start|>", special=True)
    assert len(im_start) == 1 and prompt.tokens.count(im_start[0]) == 3  # system, user, asst


def test_count_tokens_is_the_models_tokenizer(engine: LocalEngine) -> None:
    assert engine.count_tokens("Hello, world") == len(engine.tokenize("Hello, world"))
    assert engine.count_tokens("<|im_end|>") > 1  # client text never becomes a control token


def test_kv_reuse_evaluates_only_new_tokens_with_identical_logits(engine: LocalEngine) -> None:
    a = list(engine.render(MESSAGES).tokens)
    b = engine.tokenize("First, 2 plus 3")
    c = engine.tokenize("Let me count on my fingers")
    engine.forget()
    engine.evaluate(a)
    start = engine.stats.evaluated
    reused = engine.evaluate(a + b).copy()
    assert engine.stats.evaluated - start == len(b)
    start = engine.stats.evaluated
    branched = engine.evaluate(a + c).copy()  # rolls back b, keeps a
    assert engine.stats.evaluated - start == len(c)
    start = engine.stats.evaluated
    engine.evaluate(a + c)  # already there: nothing to run
    assert engine.stats.evaluated == start
    engine.forget()
    fresh_b = engine.evaluate(a + b).copy()
    engine.forget()
    fresh_c = engine.evaluate(a + c).copy()
    assert np.allclose(reused, fresh_b, atol=1e-3)
    assert np.allclose(branched, fresh_c, atol=1e-3)
    assert int(np.argmax(reused)) == int(np.argmax(fresh_b))


def test_last_position_logits_equal_logits_all(engine: LocalEngine, smollm2_file: Path) -> None:
    import llama_cpp

    tokens = list(engine.render(MESSAGES).tokens)
    engine.forget()
    ours = engine.evaluate(tokens)
    reference = llama_cpp.Llama(
        model_path=str(smollm2_file), n_ctx=128, n_threads=2, logits_all=True, verbose=False
    )
    try:
        reference.eval(tokens)
        assert np.allclose(ours, reference.scores[len(tokens) - 1], atol=1e-3)
    finally:
        reference.close()


def test_a_long_prompt_can_be_abandoned_between_batches(engine: LocalEngine) -> None:
    tokens = engine.tokenize("word " * 600)
    engine.forget()
    checks = iter([False, True])
    with pytest.raises(GenerationStopped):
        engine.evaluate(tokens, lambda: next(checks))
    assert len(engine.held) == 256  # one batch ran, the second was never started


def test_native_thinking_is_neither_prompted_nor_prefilled(smollm2_file: Path) -> None:
    native = LocalEngine.load(smollm2_file, n_ctx=256, n_threads=2, thinking="native")
    try:
        prompt = native.render(MESSAGES)
        assert not prompt.opened and PROMPTED_SYSTEM not in prompt.text
        assert prompt.text.endswith("<|im_start|>assistant\n")
    finally:
        native.close()
