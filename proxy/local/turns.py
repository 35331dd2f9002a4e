"""The three kinds of model turn, as synchronous generators over a :class:`LocalEngine`:
the main stream (reasoning, then answer), the probe (a short greedy forced answer with
log probabilities) and the continuation (the real answer after truncated reasoning).

They run on the adapter's worker thread. Between two steps of the main stream a probe may
use the same context; the common-prefix evaluation brings the main stream back for the
cost of one token, and the probe costs only its own suffix and answer tokens because the
:class:`Transcript` maps the reasoning text back to the exact tokens that were generated.
"""

from __future__ import annotations

import bisect
import codecs
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from proxy.local.engine import ContextFull, GenerationStopped, LocalEngine, Prompt
from proxy.local.sampling import Logits, log_softmax
from proxy.local.think import (
    CLOSE_SUFFIX,
    OPEN_TAG,
    PROBE_SUFFIX,
    Segment,
    SplitState,
    ThinkSplitter,
    close_text,
)
from proxy.upstreams.base import ProbeResult, StreamEvent, Usage

StopCheck = Callable[[], bool]


@dataclass(slots=True)
class Transcript:
    """What the main stream generated after ``prompt``: tokens, their decoded text, and
    the token boundaries that fall on whole characters."""

    prompt: Prompt
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    reasoning_start: int = 0  # characters of ``text`` before the reasoning (an open tag)
    _cut_chars: list[int] = field(default_factory=list)
    _cut_tokens: list[int] = field(default_factory=list)

    def add(self, token: int, text: str, clean: bool) -> None:
        self.tokens.append(token)
        self.text += text
        if clean:  # no partial UTF-8 character pending after this token
            self._cut_chars.append(len(self.text))
            self._cut_tokens.append(len(self.tokens))

    def context(self, engine: LocalEngine, reasoning: str) -> list[int]:
        """Prompt + ``reasoning`` as tokens: the generated ones as far as the text agrees
        with what was generated, the tokenizer's for the rest."""
        target = self.text[: self.reasoning_start] + reasoning
        agree = _common_chars(self.text, target)
        i = bisect.bisect_right(self._cut_chars, agree)
        chars = self._cut_chars[i - 1] if i else 0
        head = self.tokens[: self._cut_tokens[i - 1]] if i else []
        return [*self.prompt.tokens, *head, *engine.tokenize(target[chars:])]


def _common_chars(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def fresh_context(engine: LocalEngine, prompt: Prompt, reasoning: str) -> list[int]:
    """Prompt + ``reasoning`` as tokens when no transcript of this prompt is known."""
    opening = [] if prompt.opened else engine.tokenize(OPEN_TAG + "\n", special=True)
    return [*prompt.tokens, *opening, *engine.tokenize(reasoning)]


class _Counter:
    """Attributes generated tokens to the events that carry their text."""

    def __init__(self) -> None:
        self.pending = {"reasoning": 0, "content": 0}
        self.reasoning = 0
        self.completion = 0

    def token(self, in_reasoning: bool) -> None:
        self.pending["reasoning" if in_reasoning else "content"] += 1
        self.completion += 1
        self.reasoning += in_reasoning

    def events(self, segments: list[Segment]) -> Iterator[StreamEvent]:
        for kind, text in segments:
            tokens, self.pending[kind] = self.pending[kind], 0
            if text or tokens:
                yield StreamEvent(kind=kind, text=text, tokens=tokens)


def _generate(
    engine: LocalEngine,
    seq: list[int],
    sample: Callable[[Logits], int],
    splitter: ThinkSplitter,
    transcript: Transcript | None,
    max_tokens: int,
    should_stop: StopCheck,
    prompt_tokens: int | None,
) -> Iterator[StreamEvent]:
    """Sample after ``seq`` until end of generation or ``max_tokens``; yields the events,
    one finish event and one usage event. A model that ends its turn inside ``<think>``
    gets the block closed for it and writes its answer; those closing tokens count as
    prompt tokens. ``prompt_tokens=None`` counts only the prompt tokens that had to be
    evaluated (the KV cache held the rest)."""
    counter = _Counter()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    finish = "length"
    before = engine.stats.evaluated
    logits = engine.evaluate(seq, should_stop)
    prompt_cost = engine.stats.evaluated - before if prompt_tokens is None else prompt_tokens
    forced = 0
    answer_started = False
    while counter.completion < max_tokens and len(seq) < engine.n_ctx:
        if not answer_started and splitter.state == "content":
            logits = _without_eog(engine, logits)  # an answer of at least one token
            answer_started = True
        token = sample(logits)
        if engine.is_eog(token):
            if splitter.state != "reasoning" or forced:
                finish = "stop"
                break
            text = close_text(transcript.text if transcript else "", CLOSE_SUFFIX)
            closing = engine.tokenize(text, special=True)
            forced = len(closing)
            seq.extend(closing)
            if transcript is not None:
                transcript.tokens.extend(closing)
                transcript.text += text
            yield from counter.events(splitter.close())
            logits = engine.evaluate(seq, should_stop)
            continue
        seq.append(token)
        text = decoder.decode(engine.piece(token))
        if transcript is not None:
            transcript.add(token, text, clean=not decoder.getstate()[0])
        counter.token(splitter.in_reasoning)
        yield from counter.events(splitter.feed(text))
        if counter.completion < max_tokens and len(seq) < engine.n_ctx:
            logits = engine.evaluate(seq, should_stop)
        if transcript is not None and splitter.state == "reasoning":
            transcript.reasoning_start = splitter.consumed
    yield from counter.events(splitter.feed(decoder.decode(b"", final=True)) + splitter.flush())
    yield StreamEvent(kind="finish", finish_reason=finish)
    yield StreamEvent(
        kind="usage",
        usage=Usage(
            prompt_tokens=prompt_cost + forced,
            completion_tokens=counter.completion,
            reasoning_tokens=counter.reasoning,
        ),
    )


def _without_eog(engine: LocalEngine, logits: Logits) -> Logits:
    """``logits`` with end-of-generation tokens among the top ones masked out."""
    masked = logits.copy()
    for token in np.argpartition(logits, -8)[-8:]:
        if engine.is_eog(int(token)):
            masked[token] = -np.inf
    return masked


def chat_events(
    engine: LocalEngine,
    prompt: Prompt,
    transcript: Transcript,
    sample: Callable[[Logits], int],
    max_tokens: int,
    should_stop: StopCheck,
) -> Iterator[StreamEvent]:
    """The main stream: reasoning events, content events, finish, then usage."""
    start: SplitState = "reasoning" if prompt.opened else "undecided"
    budget = min(max_tokens, engine.n_ctx - len(prompt.tokens))
    if budget <= 0:
        raise ContextFull(f"the prompt's {len(prompt.tokens)} tokens fill the context")
    try:
        yield from _generate(
            engine, list(prompt.tokens), sample, ThinkSplitter(start), transcript, budget,
            should_stop, len(prompt.tokens),
        )
    except GenerationStopped:
        return


def answer_events(
    engine: LocalEngine,
    context: list[int],
    reasoning: str,
    sample: Callable[[Logits], int],
    max_tokens: int,
    should_stop: StopCheck,
) -> Iterator[StreamEvent]:
    """The continuation: ``context`` (prompt + reasoning) closed with ``</think>``, then
    the model's own answer as content events, finish, and usage. Prompt tokens count only
    what had to be evaluated (the KV cache usually holds the rest)."""
    seq = [*context, *engine.tokenize(close_text(reasoning, CLOSE_SUFFIX), special=True)]
    budget = min(max_tokens, engine.n_ctx - len(seq))
    if budget <= 0:
        raise ContextFull(f"the reasoning's {len(seq)} tokens fill the context")
    try:
        yield from _generate(
            engine, seq, sample, ThinkSplitter("content"), None, budget, should_stop, None
        )
    except GenerationStopped:
        return


def run_probe(
    engine: LocalEngine, context: list[int], reasoning: str, max_tokens: int, top_k: int = 5
) -> ProbeResult:
    """Greedy forced answer after ``context`` + ``</think>`` + ``Final answer:``.

    ``logprob`` sums the log probabilities of every answer token (a leading space and
    each digit are tokens of their own in Qwen-family vocabularies). ``alternatives`` are
    the other top-``top_k`` tokens at the first position that decides the answer (the
    first non-blank one), each as answer-so-far + that token, with its log probability.
    Ending the turn is not allowed before that first non-blank token (the probabilities
    there are renormalised without the end tokens). ``usage.prompt_tokens`` counts only
    the tokens the model had to evaluate.
    """
    suffix = engine.tokenize(close_text(reasoning, PROBE_SUFFIX), special=True)
    seq = [*context, *suffix]
    before = engine.stats.evaluated
    logits = engine.evaluate(seq)
    prompt_cost = engine.stats.evaluated - before
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text, total, generated = "", 0.0, 0
    alternatives: dict[str, float] = {}
    for step in range(max_tokens):
        logprobs = log_softmax(logits if text.strip() else _without_eog(engine, logits))
        token = int(np.argmax(logprobs))
        if engine.is_eog(token):
            break
        piece = decoder.decode(engine.piece(token))
        generated += 1
        if text.strip() and "\n" in piece:
            break
        if not text.strip() and piece.strip():
            alternatives = _alternatives(engine, logprobs, token, text, total, top_k)
        text += piece
        total += float(logprobs[token])
        if step + 1 >= max_tokens or len(seq) + 1 >= engine.n_ctx:
            break
        seq.append(token)
        logits = engine.evaluate(seq)
    answer = text.strip()
    alternatives.pop(answer, None)
    return ProbeResult(
        text=answer,
        logprob=total if answer else None,
        alternatives=alternatives or None,
        usage=Usage(prompt_tokens=prompt_cost, completion_tokens=generated),
    )


def _alternatives(
    engine: LocalEngine,
    logprobs: np.ndarray,
    chosen: int,
    before: str,
    before_logprob: float,
    top_k: int,
) -> dict[str, float]:
    out: dict[str, float] = {}
    head = np.argpartition(logprobs, -(top_k + 1))[-(top_k + 1) :]
    for token in head[np.argsort(logprobs[head])[::-1]]:
        token = int(token)
        if token == chosen or engine.is_eog(token):
            continue
        text = (before + engine.piece(token).decode("utf-8", errors="replace")).strip()
        if not text:
            continue
        value = before_logprob + float(logprobs[token])
        out[text] = float(np.logaddexp(out[text], value)) if text in out else value
    return {k: v for k, v in out.items() if math.isfinite(v)}
