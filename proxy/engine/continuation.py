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

The model's answer may be a tool call (``tool_call`` events) when the request offers
tools; it counts as answer text. ``limit``: completion tokens the client's max_tokens
still allows (see ``RunOptions.completion_cap``); each attempt is asked for at most what
is left of it after the attempts before it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

from thinkstop.proxy.engine.accounting import CallCount, RunResult, tool_call_tokens
from thinkstop.proxy.upstreams.base import (
    ChatRequest,
    Continuation,
    EventStream,
    SoftHalting,
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
                 log: Any = None, limit: int | None = None, grace_tokens: int = 0) -> None:
        self.upstream = upstream
        self.request = request
        self.main_request = main_request
        self.result = result
        self.strategies = tuple(strategies)
        self.budget = budget
        self.log = log
        self.limit = limit
        # A soft halt where the upstream supports one (raw continuations); elsewhere the
        # halt stays hard, and the decision says so.
        self.grace_tokens = grace_tokens if isinstance(upstream, SoftHalting) else 0

    def _open(self, strategy: str, reasoning: str, left: int | None) -> EventStream:
        if strategy == RERUN:
            return self.upstream.stream(capped(self.main_request, left))
        chosen: Continuation = strategy  # type: ignore[assignment]
        if self.grace_tokens and chosen == "raw" and isinstance(self.upstream, SoftHalting):
            return self.upstream.continue_soft(capped(self.request, left), reasoning,
                                               self.grace_tokens)
        return self.upstream.continue_answer(capped(self.request, left), reasoning, chosen)

    async def events(self, reasoning: str, prompt_estimate: int
                     ) -> AsyncGenerator[StreamEvent, None]:
        """Reasoning and content events of the answer (``result`` updated as they pass)."""
        last: UpstreamError | None = None
        left = self.limit
        for strategy in self.strategies:
            if left is not None and left <= 0:
                # Failed attempts spent what the client's max_tokens allowed: as an
                # upstream would, end for length rather than bill past it.
                self.result.finish_reason = "length"
                return
            count = CallCount(prompt_estimate=prompt_estimate)
            self.result.continuation = count
            wrote = False
            stream = self._open(strategy, reasoning, left)
            try:
                async for event in stream:
                    if event.kind == "tool_call" and event.tool_call is not None:
                        count.content += tool_call_tokens(self.upstream.count_tokens,
                                                          event.tool_call)
                        wrote = True
                        yield event
                    elif event.kind in ("reasoning", "content") and event.text:
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
                if left is not None:
                    left -= count.usage().completion_tokens
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


def capped(request: ChatRequest, left: int | None) -> ChatRequest:
    """``request`` asking for at most ``left`` completion tokens (under whichever of
    ``max_tokens`` / ``max_completion_tokens`` it names; ``max_tokens`` when neither)."""
    if left is None:
        return request
    params = dict(request.params)
    names = [n for n in ("max_tokens", "max_completion_tokens") if n in params]
    for name in names or ["max_tokens"]:
        params[name] = left
    return ChatRequest(request.model, request.messages, params)
