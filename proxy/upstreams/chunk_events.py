"""OpenAI-style streamed chunks (chat or completion) to normalised stream events.

Both wire formats share the envelope: ``choices`` carrying text and a ``finish_reason``,
and an optional ``usage`` chunk at the end. Only where a choice keeps its text differs,
so each adapter passes a function that turns one choice into reasoning/answer pieces, and
optionally one that reads a choice's token logprobs (:class:`ChoiceReaders`). Tool-call
pieces (``delta.tool_calls``, chat only) become ``tool_call`` events.

A text piece longer than :data:`MAX_EVENT_CHARS` (an upstream that sends a thousand
tokens in one delta) becomes several events: the halting loop counts tokens and checks
its caps per event, so one huge delta can pass a reasoning cap by one slice at most,
never by the whole delta, and counting stays linear in the text (the BPE's cost on one
long run of letters grows faster than its length).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Final

from thinkstop.proxy.upstreams.base import StreamEvent
from thinkstop.proxy.upstreams.parsing import parse_tool_calls, parse_usage
from thinkstop.proxy.upstreams.thinking import Piece, ThinkSplitter

Chunks = AsyncGenerator[dict[str, Any], None]
Entries = list[dict[str, Any]]

# Characters of text in one event at most: a few dozen tokens of ordinary text, so a cap
# checked per event holds to within that.
MAX_EVENT_CHARS: Final = 256


def _no_logprobs(_choice: dict[str, Any]) -> Entries:
    return []


@dataclass(frozen=True, slots=True)
class ChoiceReaders:
    """How to read one streamed choice: its text pieces, and its token logprobs as OpenAI
    chat entries (``[]`` when it has none)."""

    pieces: Callable[[dict[str, Any]], list[Piece]]
    logprobs: Callable[[dict[str, Any]], Entries] = _no_logprobs


class _LogprobRouter:
    """Hands a chunk's token logprobs to the answer text they belong to.

    The client asked for the logprobs of the answer it receives, so entries for reasoning
    tokens are dropped. A chunk wholly inside the answer gives all its entries to the
    answer (held back with the text while a ``<think>`` tag could still be forming); a
    chunk that crosses from reasoning into the answer gives the answer the shortest tail
    of entries covering the answer text it produced.
    """

    def __init__(self) -> None:
        self.pending: Entries = []

    def route(self, entries: Entries, pieces: list[Piece], *, was_answer: bool) -> None:
        if not entries:
            return
        answer = sum(len(text) for kind, text in pieces if kind == "content")
        crossed = any(kind == "reasoning" for kind, _ in pieces) or not was_answer
        if not crossed:
            self.pending.extend(entries)
            return
        if answer == 0:
            return  # reasoning tokens: the client gets no logprobs for them
        covered, start = 0, len(entries)
        while start > 0 and covered < answer:
            start -= 1
            covered += len(str(entries[start].get("token", "")))
        self.pending.extend(entries[start:])

    def take(self) -> tuple[dict[str, Any], ...] | None:
        if not self.pending:
            return None
        out, self.pending = tuple(self.pending), []
        return out


async def chunk_events(
    chunks: Chunks,
    splitter: ThinkSplitter,
    readers: ChoiceReaders,
) -> AsyncGenerator[StreamEvent, None]:
    """Events from ``chunks``: pieces and tool calls as they come, then usage, then one
    finish event. ``chunks`` is closed however this generator ends (halt, error,
    disconnect).
    """
    finish: str | None = None
    router = _LogprobRouter()
    try:
        async for chunk in chunks:
            for choice in chunk.get("choices") or ():
                was_answer = not splitter.in_reasoning
                pieces = readers.pieces(choice)
                router.route(readers.logprobs(choice), pieces, was_answer=was_answer)
                for event in _piece_events(pieces, router):
                    yield event
                calls = parse_tool_calls(choice.get("delta"))
                if calls and not splitter.in_reasoning:
                    # Answer text held back (a possible tag) goes before the call.
                    for event in _piece_events(splitter.flush(), router):
                        yield event
                for call in calls:
                    yield StreamEvent(kind="tool_call", tool_call=call)
                finish = choice.get("finish_reason") or finish
            usage = parse_usage(chunk.get("usage"))
            if usage is not None:
                yield StreamEvent(kind="usage", usage=usage)
        for event in _piece_events(splitter.flush(), router):
            yield event
        yield StreamEvent(kind="finish", finish_reason=finish or "stop")
    finally:
        await chunks.aclose()


def _piece_events(pieces: list[Piece], router: _LogprobRouter) -> list[StreamEvent]:
    events = []
    for kind, text in pieces:
        logprobs = router.take() if kind == "content" else None
        if len(text) <= MAX_EVENT_CHARS:
            events.append(StreamEvent(kind=kind, text=text, logprobs=logprobs))
            continue
        for start in range(0, len(text), MAX_EVENT_CHARS):  # the logprobs go with the first
            events.append(StreamEvent(kind=kind, text=text[start:start + MAX_EVENT_CHARS],
                                      logprobs=logprobs if start == 0 else None))
    return events
