"""An independent computation of a probe's answer and log probability, on a second
llama.cpp instance with ``logits_all=True`` and no KV reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def reference_probe(
    model_file: Path, context: list[int], max_tokens: int
) -> tuple[str, float, dict[int, float]]:
    """Greedy answer text, its total log probability, and the log probabilities of every
    token at the first non-blank answer position."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(model_file),
        n_ctx=len(context) + max_tokens + 8,
        n_threads=2,
        logits_all=True,
        verbose=False,
    )
    try:
        llm.eval(context)
        text, total, decisive = "", 0.0, {}
        for _ in range(max_tokens):
            row = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            logprobs = row - row.max()
            logprobs -= np.log(np.exp(logprobs).sum())
            token = int(np.argmax(logprobs))
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                break
            piece = llm.detokenize([token], special=True).decode("utf-8", errors="replace")
            if text.strip() and "\n" in piece:
                break
            if not text.strip() and piece.strip():
                decisive = {i: float(v) + total for i, v in enumerate(logprobs)}
            text += piece
            total += float(logprobs[token])
            llm.eval([token])
        return text.strip(), total, decisive
    finally:
        llm.close()
