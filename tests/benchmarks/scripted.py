"""An in-process scripted :class:`~thinkstop.proxy.upstreams.base.Upstream` (one word = one token).

The model "thinks" ``reasoning_tokens`` words, then writes ``final``; a probe with k
words of reasoning answers the last ``probe_answers`` entry whose start is <= k; a
continuation answers the same way, wrapped in ``<answer>`` tags.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from thinkstop.proxy.upstreams.base import (
    Capabilities,
    ChatRequest,
    Continuation,
    ProbeResult,
    StreamEvent,
    UpstreamBase,
    Usage,
)


@dataclass
class ScriptedUpstream(UpstreamBase):
    reasoning_tokens: int = 100
    final: str = "So the answer is <answer>5</answer>."
    probe_answers: list[tuple[int, str]] = field(
        # between boundaries: a probe reads the reasoning up to its last whole word, so
        # the probe "at 20" reads 19 words
        default_factory=lambda: [(0, "7"), (15, "2"), (55, "5")]
    )
    hedge_at: int | None = None
    fail_first: int = 0  # fail this many stream() calls before succeeding
    name: str = "scripted"
    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(continuations=("reask",))
    )
    streams: int = 0
    closed_early: int = 0
    probes: int = 0
    continuations: int = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def answer_at(self, tokens: int) -> str:
        chosen = self.probe_answers[0][1]
        for start, answer in self.probe_answers:
            if start <= tokens:
                chosen = answer
        return chosen

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.streams += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("scripted failure")
        finished = False
        try:
            for i in range(self.reasoning_tokens):
                word = "wait" if self.hedge_at == i else f"w{i}"
                await asyncio.sleep(0)  # a token at a time, as a real stream arrives
                yield StreamEvent("reasoning", f" {word}")
            yield StreamEvent("content", self.final)
            completion = self.reasoning_tokens + len(self.final.split())
            usage = Usage(10, completion, self.reasoning_tokens)
            yield StreamEvent("usage", usage=usage)
            yield StreamEvent("finish", finish_reason="stop")
            finished = True
        finally:
            if not finished:
                self.closed_early += 1

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        self.probes += 1
        answer = self.answer_at(self.count_tokens(reasoning))
        return ProbeResult(text=answer, logprob=-0.1, usage=Usage(5, 2, 0))

    async def continue_answer(
        self, request: ChatRequest, reasoning: str, strategy: Continuation
    ) -> AsyncGenerator[StreamEvent, None]:
        self.continuations += 1
        answer = self.answer_at(self.count_tokens(reasoning))
        yield StreamEvent("content", f"<answer>{answer}</answer>")

    async def aclose(self) -> None:
        return None
