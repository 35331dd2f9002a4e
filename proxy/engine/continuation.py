"""After a halt: the model writes its answer from the truncated reasoning, with fallbacks.

The main stream is already closed when the continuation runs, so "let the upstream
finish" is no longer possible as such. The chain is:

1. the model's continuation strategy (``raw``, ``prefix``, ``prefill`` or ``reask``);
2. every other strategy the upstream offers, best first;
3. as a last resort, ``rerun``: the original request again, its reasoning hidden from the
   client (already shown the first reasoning) and cut at the request's reasoning budget,
   its answer streamed. Costly, but the client gets the model's own answer.

A strategy that fails before writing any answer text hands over to the next one; one that
fails after answer text reached the client cannot be replaced without showing two
answers, so that failure propagates (the client then gets an in-band error). Every
attempt's tokens are counted, failed ones too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

from thinkstop.proxy.engine.accounting import CallCount, RunResult
from thinkstop.proxy.upstreams.base import (
    ChatRequest,
    Continuation,
    EventStream,
    StreamEvent,
    Upstream,
)
from thinkstop.proxy.upstreams.base import UpstreamError as UpstreamError

RERUN: Final = "rerun"


def fallback_chain(chosen: Continuation | None, offered: Sequence[Continuation],
                   *, rerun: bool = True) -> tuple[str, ...]:
    """``chosen`` first, then the other offered strategies, then ``rerun`` if allowed."""
    chain: list[str] = [] if chosen is None else [chosen]
    chain.extend(s for s in offered if s not in chain)
    if rerun and chain:
        chain.append(RERUN)  # only where some continuation exists (not hidden reasoning)
    return tuple(chain)


class ContinuationChain:
    """Streams the final answer for one halted request, falling back on failure."""

    def __init__(self, upstream: Upstream, request: ChatRequest, main_request: ChatRequest,
                 result: RunResult, *, strategies: Sequence[str], budget: int | None,
                 log: Any = None) -> None:
        self.upstream = upstream
        self.request = request
        self.main_request = main_request
        self.result = result
        self.strategies = tuple(strategies)
        self.budget = budget
        self.log = log

    def _open(self, strategy: str, reasoning: str) -> EventStream:
        if strategy == RERUN:
            return self.upstream.stream(self.main_request)
        chosen: Continuation = strategy  # type: ignore[assignment]
        return self.upstream.continue_answer(self.request, reasoning, chosen)

    async def events(self, reasoning: str, prompt_estimate: int
                     ) -> AsyncGenerator[StreamEvent, None]:
        """Reasoning and content events of the answer (``result`` updated as they pass)."""
        last: UpstreamError | None = None
        for strategy in self.strategies:
            count = CallCount(prompt_estimate=prompt_estimate)
            self.result.continuation = count
            wrote = False
            stream = self._open(strategy, reasoning)
            try:
                async for event in stream:
                    if event.kind in ("reasoning", "content") and event.text:
                        tokens = event.tokens if event.tokens is not None else (
                            self.upstream.count_tokens(event.text))
                        if event.kind == "content":
                            count.content += tokens
                            wrote = True
                        else:
                            count.reasoning += tokens
                            if strategy == RERUN:  # thought again: counted, not shown
                                self._check_budget(count.reasoning)
                                continue
                        yield event
                    elif event.kind == "usage" and event.usage is not None:
                        count.exact = event.usage
                    elif event.kind == "finish" and event.finish_reason:
                        self.result.finish_reason = event.finish_reason
                self.result.strategy = strategy
                return
            except UpstreamError as exc:
                last = exc
                self.result.faults.append(f"continuation_failed:{strategy}")
                self.result.failed_calls.append(count)
                self.result.continuation = None
                if self.log is not None:
                    self.log.warning("continuation_failed", strategy=strategy,
                                     error=exc.message[:200], wrote_answer=wrote)
                if wrote:
                    raise
            finally:
                await stream.aclose()
        raise last or UpstreamError("no continuation strategy is available")

    def _check_budget(self, tokens: int) -> None:
        if self.budget is not None and tokens > self.budget:
            raise UpstreamError(f"the re-run's reasoning passed the budget of {self.budget}")
