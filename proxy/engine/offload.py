"""CPU-heavy work of one request kept off the event loop.

Every stream of a replica shares one event loop, so a request whose work blocks it stalls
them all: counting the tokens of one 3.9 MiB message without spaces took the BPE about
two seconds (its cost on one long run of letters grows faster than the text), and every
other stream froze meanwhile. Work whose size passes :data:`OFFLOAD_CHARS` runs in a
worker thread instead (tiktoken releases the GIL while it encodes; the embedded model's
tokenizer is an HTTP call), small work stays inline, where a thread hop would cost more
than the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, TypeVar

from thinkstop.proxy.upstreams.base import ChatRequest
from thinkstop.proxy.upstreams.thinking import message_text

T = TypeVar("T")

# Characters of text above which counting goes to a thread: a few milliseconds of BPE at
# worst below it.
OFFLOAD_CHARS: Final = 16_384


def request_chars(request: ChatRequest) -> int:
    """About how much text a request carries: its messages' text, or its own prompt."""
    prompt = request.params.get("prompt")
    size = len(prompt) if isinstance(prompt, str) else 0
    return size + sum(len(message_text(m.get("content"))) for m in request.messages)


async def off_loop(work: Callable[[], T], size: int) -> T:
    """``work()``, in a worker thread when ``size`` (characters) passes the threshold."""
    if size <= OFFLOAD_CHARS:
        return work()
    return await asyncio.to_thread(work)
