"""The benchmark scripts' client side of a streamed chat completion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def stream_chunks(url: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """POST ``body`` to ``url``'s ``/v1/chat/completions`` and yield each decoded SSE
    chunk as it arrives (``[DONE]`` ends it); an HTTP error raises before any chunk."""
    import httpx

    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield json.loads(line[6:])
