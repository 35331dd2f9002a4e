"""The three kinds of model turn over a :class:`LocalEngine`, run on worker threads: the
main stream (reasoning, then answer), the probe (a short greedy forced answer with log
probabilities) and the continuation (the real answer after truncated reasoning).

A probe may run while a main stream generates: it announces itself through
:class:`Preemption`, the generation stops at its next token and waits, the probe runs in
the same slot (the prompt cache holds the prompt and the reasoning, so the probe costs its
own suffix and answer), and the generation resumes from its tokens so far for the cost of
the few tokens it had generated past the probe's cut. The :class:`Transcript` maps the
reasoning text back to the exact tokens that were generated, so probes and continuations
reuse them instead of re-tokenising.
"""

from __future__ import annotations

import bisect
import codecs
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from thinkstop.proxy.upstreams.base import ProbeResult, StreamEvent, Usage
from thinkstop.proxy.upstreams.local.engine import ContextFull, LocalEngine, Prompt, Sampling, Token
from thinkstop.proxy.upstreams.prompts import ANSWER_CLOSE, probe_suffix, wrap_up
from thinkstop.proxy.upstreams.thinking import (
    THINK_OPEN,
    Piece,
    SplitState,
    ThinkSplitter,
    closing,
)

StopCheck = Callable[[], bool]
Emit = Callable[[StreamEvent], None]


class Preemption:
    """Lets probes in between two tokens of a running generation (module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting = 0

    @contextmanager
    def probing(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
        try:
            yield
        finally:
            with self._cond:
                self._waiting -= 1
                self._cond.notify_all()

    def wanted(self) -> bool:
        return self._waiting > 0

    def wait(self, should_stop: StopCheck) -> None:
        """Block until no probe is waiting (or the generation is abandoned)."""
        with self._cond:
            while self._waiting > 0 and not should_stop():
                self._cond.wait(0.05)


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
    opening = [] if prompt.opened else engine.tokenize(THINK_OPEN + "\n", special=True)
    return [*prompt.tokens, *opening, *engine.tokenize(reasoning)]


class _Counter:
    """Attributes generated tokens to the events that carry their text."""

    def __init__(self) -> None:
        self.pending = {"reasoning": 0, "content": 0}
        self.reasoning = 0
        self.completion = 0
        self.content = 0

    def token(self, in_reasoning: bool) -> None:
        self.pending["reasoning" if in_reasoning else "content"] += 1
        self.completion += 1
        self.reasoning += in_reasoning
        self.content += not in_reasoning

    def events(self, segments: list[Piece]) -> Iterator[StreamEvent]:
        for kind, text in segments:
            tokens, self.pending[kind] = self.pending[kind], 0
            if text or tokens:
                yield StreamEvent(kind=kind, text=text, tokens=tokens)


@dataclass(slots=True)
class _Turn:
    """The state of one generating turn (main stream or continuation)."""

    engine: LocalEngine
    seq: list[int]
    splitter: ThinkSplitter
    transcript: Transcript | None
    max_tokens: int
    emit: Emit
    preempt: Preemption
    counter: _Counter = field(default_factory=_Counter)
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    needs_ban: bool = False  # the next token opens the answer: it may not end the turn
    banned_once: bool = False
    reasoning_limit: int | None = None  # a soft halt's grace: close the reasoning here
    needs_close: bool = False
    text: str = ""  # what this turn generated, decoded

    def on_tokens(self, tokens: list[Token], _text: str) -> bool:
        in_reasoning = self.splitter.in_reasoning
        text = ""
        for token in tokens:
            self.seq.append(token.id)
            self.counter.token(in_reasoning)
            piece = self.decoder.decode(token.raw)
            text += piece
            self.text += piece
            if self.transcript is not None:
                self.transcript.add(token.id, piece, clean=not self.decoder.getstate()[0])
        for event in self.counter.events(self.splitter.feed(text)):
            self.emit(event)
        if self.transcript is not None and self.splitter.state == "reasoning":
            self.transcript.reasoning_start = self.splitter.consumed
        if self.splitter.state == "content" and self.counter.content == 0 and not self.banned_once:
            self.needs_ban = True  # the answer begins next: stop so that its first token is banned
            return True
        if (self.reasoning_limit is not None and self.splitter.state == "reasoning"
                and self.counter.reasoning >= self.reasoning_limit):
            self.needs_close = True  # the grace is spent: the answer now
            return True
        return self.counter.completion >= self.max_tokens or self.preempt.wanted()

    def close_thinking(self) -> None:
        """The model ended its turn inside ``<think>``: close the block for it."""
        text = closing(self.transcript.text if self.transcript else self.text)
        tokens = self.engine.tokenize(text, special=True)
        self.seq.extend(tokens)
        if self.transcript is not None:
            self.transcript.tokens.extend(tokens)
            self.transcript.text += text
        for event in self.counter.events(self.splitter.close()):
            self.emit(event)
        self.needs_ban = True


def run_turn(engine: LocalEngine, seq: list[int], *, start: SplitState,
             transcript: Transcript | None, max_tokens: int, sampling: Sampling,
             should_stop: StopCheck, preempt: Preemption, emit: Emit,
             prompt_tokens: int | None, reasoning_limit: int | None = None) -> None:
    """Generate after ``seq`` until the model ends its answer or ``max_tokens``; emits
    the events, one finish event and one usage event.

    A model that ends its turn inside ``<think>`` gets the block closed for it and writes
    its answer; the first answer token may not end the turn. Usage counts as prompt
    tokens ``prompt_tokens`` (None: the first call's whole prompt, read from the cache or
    evaluated) plus every token evaluated by later calls (closing tags, and the tokens
    re-run after a probe); ``cached_prompt_tokens`` is what the first call found in the
    cache.
    Abandoned (``should_stop``): returns silently.
    """
    turn = _Turn(engine, seq, ThinkSplitter(start), transcript, max_tokens, emit, preempt,
                 needs_ban=start == "content", reasoning_limit=reasoning_limit)
    forced = False
    finish = "length"
    prompt_cost: int | None = prompt_tokens
    cached = 0
    first = True
    while turn.counter.completion < max_tokens:
        room = engine.n_ctx - len(seq) - 1
        if room <= 0:
            break
        if preempt.wanted():
            preempt.wait(should_stop)
        if should_stop():
            return
        ban = turn.needs_ban
        turn.needs_ban = False
        turn.banned_once |= ban
        result = engine.generate(
            seq, max_tokens=1 if ban else min(max_tokens - turn.counter.completion, room),
            sampling=sampling, on_tokens=turn.on_tokens, should_stop=should_stop,
            ban=sorted(engine.eog_ids) if ban else (), offset=turn.counter.completion,
        )
        if first:
            cached = result.reused
            if prompt_cost is None:
                prompt_cost = result.evaluated + result.reused
        else:
            prompt_cost = (prompt_cost or 0) + result.evaluated
        first = False
        if result.finish == "stopped":
            if should_stop():
                return
            if turn.needs_close and not forced:
                turn.needs_close = False
                forced = True
                turn.close_thinking()
            continue
        if result.finish == "stop":  # the model ended its turn
            if turn.splitter.state != "content" and not forced:
                forced = True
                turn.close_thinking()
                continue
            if turn.splitter.state == "content" and turn.counter.content == 0 \
                    and not turn.banned_once:
                turn.needs_ban = True
                continue
            finish = "stop"
            break
        if ban:
            continue  # the one banned token was written; go on with the answer
        break
    tail = turn.decoder.decode(b"", final=True)
    for event in turn.counter.events(turn.splitter.feed(tail) + turn.splitter.flush()):
        emit(event)
    emit(StreamEvent(kind="finish", finish_reason=finish))
    emit(StreamEvent(kind="usage", usage=Usage(
        prompt_tokens=prompt_cost or 0, completion_tokens=turn.counter.completion,
        reasoning_tokens=turn.counter.reasoning, cached_prompt_tokens=cached)))


def chat_turn(engine: LocalEngine, prompt: Prompt, transcript: Transcript, *,
              max_tokens: int, sampling: Sampling, should_stop: StopCheck,
              preempt: Preemption, emit: Emit) -> None:
    """The main stream: reasoning events, content events, finish, then usage."""
    budget = min(max_tokens, engine.n_ctx - len(prompt.tokens) - 1)
    if budget <= 0:
        raise ContextFull(f"the prompt's {len(prompt.tokens)} tokens fill the context")
    run_turn(engine, list(prompt.tokens), start="reasoning" if prompt.opened else "undecided",
             transcript=transcript, max_tokens=budget, sampling=sampling,
             should_stop=should_stop, preempt=preempt, emit=emit,
             prompt_tokens=len(prompt.tokens))


def soft_answer_turn(engine: LocalEngine, context: list[int], reasoning: str, *,
                     grace_tokens: int, max_tokens: int, sampling: Sampling,
                     should_stop: StopCheck, preempt: Preemption, emit: Emit) -> None:
    """A soft halt: the wrap-up cue after the reasoning, up to ``grace_tokens`` more
    reasoning (streamed as reasoning, counted as the continuation's), then the answer;
    the model may close its reasoning sooner by itself."""
    cue = wrap_up(reasoning)
    emit(StreamEvent(kind="reasoning", text=cue, tokens=0))
    seq = [*context, *engine.tokenize(cue)]
    budget = min(max_tokens + grace_tokens, engine.n_ctx - len(seq) - 1)
    if budget <= 0:
        raise ContextFull(f"the reasoning's {len(seq)} tokens fill the context")
    run_turn(engine, seq, start="reasoning", transcript=None, max_tokens=budget,
             sampling=sampling, should_stop=should_stop, preempt=preempt, emit=emit,
             prompt_tokens=None, reasoning_limit=grace_tokens)


def answer_turn(engine: LocalEngine, context: list[int], reasoning: str, *, max_tokens: int,
                sampling: Sampling, should_stop: StopCheck, preempt: Preemption,
                emit: Emit) -> None:
    """The continuation: ``context`` (prompt + reasoning) closed with ``</think>``, then
    the model's own answer as content events, finish, and usage. Its prompt is the whole
    context; the part the cache held (usually all but the closing tag) is counted as
    cached."""
    seq = [*context, *engine.tokenize(closing(reasoning), special=True)]
    budget = min(max_tokens, engine.n_ctx - len(seq) - 1)
    if budget <= 0:
        raise ContextFull(f"the reasoning's {len(seq)} tokens fill the context")
    run_turn(engine, seq, start="content", transcript=None, max_tokens=budget,
             sampling=sampling, should_stop=should_stop, preempt=preempt, emit=emit,
             prompt_tokens=None)


@dataclass(slots=True)
class _ProbeState:
    engine: LocalEngine
    seq: list[int]
    max_tokens: int
    top_k: int
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    text: str = ""
    total: float = 0.0
    generated: int = 0
    done: bool = False
    alternatives: dict[str, float] = field(default_factory=dict)
    starts: list[tuple[int, float]] = field(default_factory=list)  # (offset, logprob)

    def on_tokens(self, tokens: list[Token], _text: str) -> bool:
        for token in tokens:
            self.generated += 1
            self.seq.append(token.id)
            piece = self.decoder.decode(token.raw)
            if self.text.strip() and "\n" in piece:
                self.done = True
                return True
            blank = not self.text.strip()
            # Before the first non-blank token, ending the turn was not allowed, so the
            # distribution there is the model's renormalised without its end tokens.
            shift = _without_end(self.engine, token) if blank else 0.0
            if blank and piece.strip():
                self.alternatives = _alternatives(self.engine, token, self.text, self.total,
                                                  shift, self.top_k)
            self.starts.append((len(self.text), token.logprob + shift))
            self.text += piece
            self.total += token.logprob + shift
            if ANSWER_CLOSE in self.text:
                self.done = True
                return True
            if blank and piece.strip():
                return True  # the answer has begun: lift the ban on ending the turn
        return False

    def answer(self) -> tuple[str, float]:
        """The answer before ``</answer>``, and the log probability of the tokens that
        wrote it (not of the closing tag's)."""
        cut = self.text.find(ANSWER_CLOSE)
        if cut < 0:
            return self.text.strip(), self.total
        return self.text[:cut].strip(), sum(lp for at, lp in self.starts if at < cut)


def run_probe(engine: LocalEngine, context: list[int], reasoning: str, max_tokens: int,
              top_k: int = 5, should_stop: StopCheck | None = None) -> ProbeResult:
    """Greedy forced answer after ``context`` + the probe suffix (``</think>``, then "The
    final answer is <answer>", the wording every adapter's probe uses).

    ``logprob`` sums the log probabilities of every answer token (a leading space and
    each digit are tokens of their own in Qwen-family vocabularies). ``alternatives`` are
    the other top-``top_k`` tokens at the first position that decides the answer (the
    first non-blank one), each as answer-so-far + that token, with its log probability.
    Ending the turn is not allowed before that first non-blank token (the probabilities
    there are renormalised without the end tokens). The answer ends at ``</answer>``, a
    newline, the end of the turn or ``max_tokens``. ``usage.prompt_tokens`` is the whole
    prompt read (context + suffix, plus the token re-run between the two phases);
    ``usage.cached_prompt_tokens`` the part the cache held: usually all but the suffix.
    """
    suffix = engine.tokenize(probe_suffix(reasoning), special=True)
    seq = [*context, *suffix]
    state = _ProbeState(engine, seq, max_tokens, top_k)
    stop = should_stop or (lambda: False)
    evaluated = 0
    cached: int | None = None
    # Phase 1 bans the end tokens until the first non-blank token; phase 2 runs free until
    # a newline after the answer, the end of the turn, or the token limit.
    for ban in (True, False):
        left = max_tokens - state.generated
        if left <= 0 or state.done or stop():
            break
        result = engine.generate(
            list(seq), max_tokens=left, sampling=_GREEDY, on_tokens=state.on_tokens,
            should_stop=stop, top_n=top_k + 1, ban=sorted(engine.eog_ids) if ban else (),
        )
        evaluated += result.evaluated
        cached = result.reused if cached is None else cached
        if result.finish != "stopped":
            break
    answer, logprob = state.answer()
    state.alternatives.pop(answer, None)
    return ProbeResult(
        text=answer,
        logprob=logprob if answer else None,
        alternatives=state.alternatives or None,
        usage=Usage(prompt_tokens=evaluated + (cached or 0), completion_tokens=state.generated,
                    cached_prompt_tokens=cached or 0),
    )


_GREEDY = Sampling(temperature=0.0)


def _without_end(engine: LocalEngine, token: Token) -> float:
    """log(1 / (1 - p_end)) at a position: the shift that renormalises without the end
    tokens (those among the reported candidates)."""
    p_end = sum(math.exp(c.logprob) for c in token.top if c.token in engine.eog_ids)
    return -math.log1p(-min(p_end, 0.999999)) if p_end > 0 else 0.0


def _alternatives(engine: LocalEngine, token: Token, before: str, before_logprob: float,
                  shift: float, top_k: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for candidate in token.top[: top_k + 1]:
        if candidate.token == token.id or candidate.token in engine.eog_ids:
            continue
        text = (before + candidate.text).strip()
        if not text:
            continue
        value = before_logprob + candidate.logprob + shift
        out[text] = _logaddexp(out[text], value) if text in out else value
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _logaddexp(a: float, b: float) -> float:
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))
