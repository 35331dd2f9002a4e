"""Scripts for the fake reasoning server: what the "model" thinks, answers, and probes say.

A script is data: the reasoning as a list of tokens, the natural answer, and the answers a
probe (or a continuation) gives depending on how much of the reasoning its prompt holds.
Every token in the built-in vocabulary is one token of cl100k_base, so the proxy's token
estimate and the fake's exact counts agree.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

ReasoningField = Literal["reasoning_content", "reasoning", "think_tags"]

# One cl100k_base token each (leading space included).
VOCABULARY = (
    " so", " we", " count", " the", " apple", " and", " then", " add", " two", " more",
    " to", " get", " total", " of", " in", " basket", " first", " next", " check", " again",
    " step", " think", " carefully", " about", " this", " problem", " three", " four",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A tool call the scripted model makes. ``arguments`` is JSON text in which
    ``{answer}`` stands for the answer the model holds after the reasoning it had (so a
    call made after a halt differs from the one made after all the reasoning)."""

    name: str
    arguments: str = '{"answer": "{answer}"}'

    def arguments_at(self, answer: str) -> str:
        return self.arguments.replace("{answer}", answer)


def words(n: int, vocabulary: tuple[str, ...] = VOCABULARY) -> list[str]:
    """``n`` reasoning tokens cycling through the vocabulary."""
    return list(itertools.islice(itertools.cycle(vocabulary), n))


@dataclass
class Script:
    """One scripted model.

    ``probe_answers``: ``(from_tokens, answer)`` pairs: a probe whose prompt holds at least
    ``from_tokens`` reasoning tokens answers ``answer`` (the last pair that applies).
    ``final_answers``: the same for continuations (defaults to ``probe_answers``): the
    answer the model writes after truncated reasoning, phrased by ``final_template``.
    ``probe_logprob``: total log probability reported for a probe's answer (None: no
    logprobs even when asked). ``token_delay``: seconds per streamed token (paced by the
    clock). ``fail_main`` / ``fail_probes``: answer main calls / probes with this HTTP
    status. ``drop_after``: cut the connection after that many main-stream tokens. The
    fields after it script further misbehaviour (hang, stall, malformed SSE, failing
    continuations, secrets echoed in errors) for the hardening tests.

    ``tool_calls``: what the model calls, instead of answering in text, when the request
    offers tools (``tool_choice`` not ``"none"``) and the conversation holds no tool result
    yet: after its whole reasoning (the main stream), or after a halt (the continuation).
    Once a ``tool`` message is in the conversation, it answers in text. ``answer_logprob``:
    the log probability given to every streamed token when a request asks for logprobs.
    """

    reasoning: list[str] = field(default_factory=lambda: words(200))
    answer: list[str] = field(default_factory=lambda: ["The", " answer", " is", " 42", "."])
    probe_answers: list[tuple[int, str]] = field(default_factory=lambda: [(0, "42")])
    final_answers: list[tuple[int, str]] | None = None
    final_template: str = "Final answer: {answer}."
    probe_logprob: float | None = -0.05
    token_delay: float = 0.0
    probe_delay: float = 0.0
    reasoning_field: ReasoningField = "reasoning_content"
    hide_reasoning: bool = False
    fail_main: int | None = None
    fail_probes: int | None = None
    drop_after: int | None = None
    # Misbehaviour for the hardening tests (each off by default):
    fail_main_times: int | None = None  # fail_main applies to the first N main calls only
    main_delay: float = 0.0  # wait before answering a main call at all (no headers)
    stall_after: int | None = None  # after N reasoning tokens send nothing, until closed
    headers_only: bool = False  # a main stream's response headers, then nothing, until closed
    linger_after_done: float = 0.0  # seconds the body stays open after [DONE] (comments)
    malformed_after: int | None = None  # after N reasoning tokens send a malformed SSE line
    # (i, text): the i-th reasoning (or answer) token is ``text``, sent as one delta: a
    # megabyte of it is one long SSE line (usage still counts it as one token)
    big_reasoning: tuple[int, str] | None = None
    big_answer: tuple[int, str] | None = None
    drop_in_answer_after: int | None = None  # cut the connection after N answer tokens
    fail_continuations: int = 0  # answer the first N continuation calls with HTTP 500
    continuation_delay: float = 0.0  # seconds per continuation token
    echo_auth_on_error: bool = False  # error messages repeat the Authorization header
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)
    answer_logprob: float = -0.25

    def __post_init__(self) -> None:
        self.text = "".join(self.reasoning)
        self._ends = list(itertools.accumulate(len(t) for t in self.reasoning))

    @classmethod
    def overthinking(
        cls,
        *,
        right: str = "42",
        wrong: str = "41",
        total: int = 2000,
        settle_at: int = 64,
        drift_at: int = 1200,
        token_delay: float = 0.002,
    ) -> Script:
        """Right early and stable, drifting wrong late, with a wrong natural answer."""
        return cls(
            reasoning=words(total),
            answer=["The", " answer", " is", f" {wrong}", "."],
            probe_answers=[(0, "7"), (settle_at, right), (drift_at, wrong)],
            token_delay=token_delay,
        )

    def tokens_in(self, haystack: str) -> int:
        """How many reasoning tokens (a prefix of the script) ``haystack`` contains."""
        lo, hi = 0, len(self.reasoning)
        while lo < hi:  # largest k with the k-token prefix present; presence is monotone
            mid = (lo + hi + 1) // 2
            if self.text[: self._ends[mid - 1]] in haystack:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def probe_answer_at(self, tokens: int) -> str:
        return _lookup(self.probe_answers, tokens)

    def final_answer_at(self, tokens: int) -> str:
        return _lookup(self.final_answers or self.probe_answers, tokens)

    def final_text_at(self, tokens: int) -> str:
        return self.final_template.format(answer=self.final_answer_at(tokens))

    def tool_calls_at(self, tokens: int) -> list[tuple[str, str]]:
        """``(name, arguments)`` of the calls made after ``tokens`` of reasoning."""
        answer = self.final_answer_at(tokens)
        return [(call.name, call.arguments_at(answer)) for call in self.tool_calls]

    def probe_probability(self) -> float | None:
        return None if self.probe_logprob is None else math.exp(self.probe_logprob)


def _lookup(schedule: list[tuple[int, str]], tokens: int) -> str:
    starts = [start for start, _ in schedule]
    index = max(0, bisect_right(starts, tokens) - 1)
    return schedule[index][1]
