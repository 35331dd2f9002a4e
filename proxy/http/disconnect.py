"""Cancel work when the client goes away before the response starts.

Starlette notices a disconnect only while it streams a response; a non-streamed request
(or a streamed one still waiting for the upstream's first token) would otherwise run to
the end for nobody. :func:`unless_disconnected` runs the work beside a listener on the
ASGI ``receive`` channel and cancels the work the moment the client leaves, so its
``finally`` blocks close the upstream stream and the probes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the response was ready."""


async def _disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


async def unless_disconnected(receive: Callable[[], Awaitable[Any]],
                              work: Awaitable[T]) -> T:
    """``await work``, or cancel it and raise :class:`ClientGone` if the client leaves."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()  # the caller was cancelled, or the client left
        watch.cancel()
        await asyncio.wait({task, watch})
    if task.cancelled():
        raise ClientGone
    return task.result()
