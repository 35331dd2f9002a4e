"""An in-process upstream implementing the ``Upstream`` protocol from a :class:`Script`.

For orchestrator tests that need exact control of timing (slow or failing probes) without
HTTP. ``closed`` / ``probes_cancelled`` flags are set in ``finally`` blocks, the way the
real adapters close their connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from thinkstop.proxy.testing.script import Script
from thinkstop.proxy.upstreams.base import (
    Capabilities,
    ChatRequest,
    Continuation,
    ProbeResult,
    StreamEvent,
    UpstreamBase,
    UpstreamError,
    Usage,
)


class MemoryUpstream(UpstreamBase):
    """Streams ``script.reasoning`` then ``script.answer``; one token per event."""

    def __init__(self, script: Script, *, continuations: tuple[Continuation, ...] = ("reask",),
                 hides_reasoning: bool = False, fail_mid_stream_at: int | None = None) -> None:
        self.name = "memory"
        self.script = script
        self.capabilities = Capabilities(continuations=continuations, logprobs=True,
                                         hides_reasoning=hides_reasoning)
        self.fail_mid_stream_at = fail_mid_stream_at
        self.sent = 0
        self.closed = False
        self.completed = False
        self.probe_calls = 0
        self.probes_in_flight = 0
        self.max_probes_in_flight = 0
        self.probes_cancelled = 0
        self.continuation_reasoning: str | None = None
        self.continuation_closed = False

    def count_tokens(self, text: str) -> int:
        return len(text.split()) or (1 if text else 0)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        try:
            for i, token in enumerate(self.script.reasoning):
                if self.fail_mid_stream_at is not None and i >= self.fail_mid_stream_at:
                    raise UpstreamError("scripted failure mid-stream", status_code=500)
                await asyncio.sleep(self.script.token_delay)
                self.sent = i + 1
                yield StreamEvent("reasoning", token, tokens=1)
            for token in self.script.answer:
                yield StreamEvent("content", token, tokens=1)
            n = len(self.script.reasoning)
            yield StreamEvent("usage", usage=Usage(5, n + len(self.script.answer), n))
            yield StreamEvent("finish", finish_reason="stop")
            self.completed = True
        finally:
            self.closed = True

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        self.probe_calls += 1
        self.probes_in_flight += 1
        self.max_probes_in_flight = max(self.max_probes_in_flight, self.probes_in_flight)
        try:
            await asyncio.sleep(self.script.probe_delay)
            if self.script.fail_probes is not None:
                raise UpstreamError("scripted probe failure", status_code=self.script.fail_probes)
            answer = self.script.probe_answer_at(self.script.tokens_in(reasoning))
            return ProbeResult(f"<answer>{answer}</answer>", logprob=self.script.probe_logprob,
                               usage=Usage(10, 2, 0))
        except asyncio.CancelledError:
            self.probes_cancelled += 1
            raise
        finally:
            self.probes_in_flight -= 1

    async def continue_answer(self, request: ChatRequest, reasoning: str,
                              strategy: Continuation) -> AsyncGenerator[StreamEvent, None]:
        self.continuation_reasoning = reasoning
        try:
            text = self.script.final_text_at(self.script.tokens_in(reasoning))
            for word in text.split(" "):
                yield StreamEvent("content", word + " ", tokens=1)
            yield StreamEvent("finish", finish_reason="stop")
        finally:
            self.continuation_closed = True

