"""A thread-safe wrapper over one ``llama_cpp.Llama``: tokenizer, chat template, and
evaluation that reuses the KV cache through the longest common token prefix.

Only the last position's logits are read after an evaluation (``logits_all=True`` would
cost ~0.6 GB per 1k tokens of context with a 150k vocabulary), and they give the same
next-token numbers. Every method that touches the context holds one lock; the adapter
also runs them all on one worker thread, so the lock is a second line of defence.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog

from proxy.local.sampling import Logits
from proxy.local.think import (
    OPEN_TAG,
    PREFILL,
    ThinkingMode,
    detect_thinking,
    plain_messages,
    prompted_messages,
)

log = structlog.get_logger(__name__)

# A GGUF without a chat template gets ChatML, the most common convention.
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class GenerationStopped(Exception):
    """Evaluation was abandoned because its caller asked to stop (client gone, halt)."""


class ContextFull(Exception):
    """The tokens do not fit in the model's context window."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """A rendered chat prompt; ``opened`` when it ends inside a ``<think>`` block."""

    text: str
    tokens: tuple[int, ...]
    opened: bool


@dataclass(slots=True)
class EvalStats:
    """Counters that make the KV reuse observable (tests and the benchmark read them)."""

    evaluated: int = 0  # tokens run through the model
    reused: int = 0  # tokens served from the KV cache instead
    calls: int = 0


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LocalEngine:
    """One loaded GGUF model and its single context."""

    def __init__(
        self, llama: Any, *, path: Path, thinking: ThinkingMode | Literal["auto"] = "auto"
    ) -> None:
        self._llm = llama
        self.path = path
        self.lock = threading.RLock()
        self.stats = EvalStats()
        self.n_ctx: int = int(llama.n_ctx())
        self.n_vocab: int = int(llama.n_vocab())
        self._n_batch: int = int(llama.n_batch)
        self._held: list[int] = []  # tokens whose keys/values are in the context now
        self._logits: Logits | None = None  # next-token logits after exactly ``_held``
        template = llama.metadata.get("tokenizer.chat_template")
        self.chat_template: str = template or _CHATML
        self.thinking: ThinkingMode = detect_thinking(template) if thinking == "auto" else thinking
        self._eog_cache: dict[int, bool] = {}
        self._formatter: Any = None

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 256,
        thinking: ThinkingMode | Literal["auto"] = "auto",
    ) -> LocalEngine:
        """Load ``path`` with llama.cpp (imported here, so the extra stays optional)."""
        import llama_cpp

        threads = n_threads or default_threads()
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=False,
        )
        engine = cls(llama, path=path, thinking=thinking)
        log.info(
            "local model loaded",
            path=str(path),
            n_ctx=engine.n_ctx,
            n_threads=threads,
            thinking=engine.thinking,
            size_mb=round(path.stat().st_size / 1e6),
        )
        return engine

    # -- tokenizer -------------------------------------------------------------------------
    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokens of ``text`` with no BOS; ``special`` parses tags like ``<|im_end|>``.

        The vocabulary is read-only, so this does not take the context lock.
        """
        if not text:
            return []
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens rendered as their text)."""
        return bytes(self._llm.detokenize([token], special=True))

    def is_eog(self, token: int) -> bool:
        """End of generation (EOS, end-of-turn, ...)."""
        cached = self._eog_cache.get(token)
        if cached is None:
            import llama_cpp

            cached = bool(llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token))
            self._eog_cache[token] = cached
        return cached

    # -- chat template ---------------------------------------------------------------------
    def render(self, messages: list[dict[str, Any]]) -> Prompt:
        """The generation prompt for ``messages``.

        Models that do not think natively get the thinking instruction as a system turn
        and an assistant turn pre-filled with ``<think>\\n``.
        """
        if self.thinking == "prompted":
            text = self._apply_template(prompted_messages(messages)) + PREFILL
        else:
            text = self._apply_template(plain_messages(messages))
        opened = text.rstrip().endswith(OPEN_TAG)
        tokens = self.tokenize(text, special=True)
        if self._llm._model.add_bos_token() and tokens[:1] != [self._llm.token_bos()]:
            tokens.insert(0, int(self._llm.token_bos()))
        return Prompt(text=text, tokens=tuple(tokens), opened=opened)

    def _apply_template(self, messages: list[dict[str, Any]]) -> str:
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            model = self._llm._model
            self._formatter = Jinja2ChatFormatter(
                template=self.chat_template,
                eos_token=model.token_get_text(self._llm.token_eos()),
                bos_token=model.token_get_text(self._llm.token_bos()),
                add_generation_prompt=True,
            )
        return str(self._formatter(messages=messages).prompt)

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(
        self, tokens: Sequence[int], should_stop: Callable[[], bool] | None = None
    ) -> Logits:
        """Next-token logits after ``tokens``.

        Only the tokens past the longest common prefix with what the context holds are
        run; when all of them are held, at most the last one is re-run to recover its
        logits. ``should_stop`` is checked between batches, so a long prompt can be
        abandoned part-way (:class:`GenerationStopped`).
        """
        if not tokens:
            raise ValueError("cannot evaluate an empty token sequence")
        if len(tokens) > self.n_ctx:
            raise ContextFull(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        with self.lock:
            self.stats.calls += 1
            common = _common_prefix(self._held, tokens)
            if common == len(tokens) == len(self._held) and self._logits is not None:
                self.stats.reused += common
                return self._logits
            common = min(common, len(tokens) - 1)
            self.stats.reused += common
            del self._held[common:]
            self._logits = None
            self._llm.n_tokens = common
            todo = list(tokens[common:])
            for start in range(0, len(todo), self._n_batch):
                if should_stop is not None and should_stop():
                    raise GenerationStopped
                batch = todo[start : start + self._n_batch]
                self._llm.eval(batch)
                self._held.extend(batch)
                self.stats.evaluated += len(batch)
            row = self._llm._ctx.get_logits_ith(-1)
            self._logits = np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()
            return self._logits

    @property
    def held(self) -> tuple[int, ...]:
        """The tokens whose keys and values the context holds now."""
        with self.lock:
            return tuple(self._held)

    def forget(self) -> None:
        """Drop the KV cache, so the next evaluation starts from nothing (benchmarks)."""
        with self.lock:
            self._held.clear()
            self._logits = None
            self._llm.n_tokens = 0

    def close(self) -> None:
        with self.lock:
            self._held.clear()
            self._logits = None
            self._llm.close()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n
