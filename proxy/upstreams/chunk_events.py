"""OpenAI-style streamed chunks (chat or completion) to normalised stream events.

Both wire formats share the envelope: ``choices`` carrying text and a ``finish_reason``,
and an optional ``usage`` chunk at the end. Only where a choice keeps its text differs,
so each adapter passes a function that turns one choice into reasoning/answer pieces.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from thinkstop.proxy.upstreams.base import StreamEvent
from thinkstop.proxy.upstreams.parsing import parse_usage
from thinkstop.proxy.upstreams.thinking import Piece, ThinkSplitter

Chunks = AsyncGenerator[dict[str, Any], None]


async def chunk_events(
    chunks: Chunks,
    splitter: ThinkSplitter,
    pieces: Callable[[dict[str, Any]], list[Piece]],
) -> AsyncGenerator[StreamEvent, None]:
    """Events from ``chunks``: pieces as they come, then usage, then one finish event.

    ``chunks`` is closed however this generator ends (halt, error, disconnect).
    """
    finish: str | None = None
    try:
        async for chunk in chunks:
            for choice in chunk.get("choices") or ():
                for kind, text in pieces(choice):
                    yield StreamEvent(kind=kind, text=text)
                finish = choice.get("finish_reason") or finish
            usage = parse_usage(chunk.get("usage"))
            if usage is not None:
                yield StreamEvent(kind="usage", usage=usage)
        for kind, text in splitter.flush():
            yield StreamEvent(kind=kind, text=text)
        yield StreamEvent(kind="finish", finish_reason=finish or "stop")
    finally:
        await chunks.aclose()
