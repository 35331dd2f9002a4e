"""SSE framing, and a streaming response that always closes its source.

``data: {json}\\n\\n`` per event, ``data: [DONE]\\n\\n`` exactly once at the end (also after
an in-band error). :class:`SSEResponse` watches for the client going away while it
streams and, whatever happens, closes the body generator, whose ``finally`` closes the
upstream stream and cancels the probes, then runs its ``cleanup`` (for a generator that
never started, whose ``finally`` would not run).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE: Final = b"data: [DONE]\n\n"


def frame(payload: dict[str, Any]) -> bytes:
    """One SSE event carrying ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class SSEResponse(StreamingResponse):
    """``text/event-stream`` that stops and closes its generator on client disconnect."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None], *,
                 cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        self._source = content
        # Closing a generator that never started skips its ``finally``; ``cleanup`` runs
        # whatever happened (a client that leaves before the first chunk included).
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        watching = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                if not task.done():
                    task.cancel()
            await asyncio.wait({streaming, watching})
            # Runs the generator's finally now, not whenever it is garbage collected.
            try:
                await self._source.aclose()
            finally:
                if self._cleanup is not None:
                    await self._cleanup()
        if streaming.done() and not streaming.cancelled():
            error = streaming.exception()
            if error is not None and not isinstance(error, OSError):
                raise error
