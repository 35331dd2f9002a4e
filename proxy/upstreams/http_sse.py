"""HTTP plumbing shared by the native adapters: JSON posts and SSE reading over httpx.

Every transport failure becomes :class:`UpstreamError` here, so adapters never see an
httpx exception and the proxy never matches error text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx

from proxy.upstreams.base import UpstreamError


def make_client(timeout: float | None) -> httpx.AsyncClient:
    """A pooled client; ``timeout`` bounds connect and each read (not the whole stream)."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout or 600.0, connect=10.0),
                             limits=limits)


def _message_of(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return body[:200].decode(errors="replace")


async def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        body = await response.aread()
        raise UpstreamError(
            f"upstream returned HTTP {response.status_code}: {_message_of(body)}",
            status_code=response.status_code,
        )


async def post_json(client: httpx.AsyncClient, url: str, body: Mapping[str, Any],
                    headers: Mapping[str, str]) -> dict[str, Any]:
    """POST and return the decoded JSON reply."""
    try:
        response = await client.post(url, json=body, headers=dict(headers))
        await _check(response)
        payload = response.json()
    except httpx.HTTPError as exc:
        raise UpstreamError(f"upstream request failed: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        raise UpstreamError("upstream sent malformed JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamError("upstream sent a JSON reply that is not an object")
    return payload


async def stream_sse(client: httpx.AsyncClient, url: str, body: Mapping[str, Any],
                     headers: Mapping[str, str]) -> AsyncGenerator[dict[str, Any], None]:
    """POST and yield each SSE ``data:`` payload as JSON, until ``[DONE]``.

    Closing this generator (``aclose``) closes the HTTP response at once, so the server
    sees the disconnect and stops generating.
    """
    try:
        async with client.stream("POST", url, json=body, headers=dict(headers)) as response:
            await _check(response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event: lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    payload = json.loads(data)
                except ValueError as exc:
                    raise UpstreamError("upstream sent a malformed SSE chunk") from exc
                if isinstance(payload, dict) and "error" in payload:
                    raise UpstreamError(f"upstream error mid-stream: {_message_of(data.encode())}")
                yield payload
    except httpx.HTTPError as exc:
        raise UpstreamError(f"upstream stream failed: {type(exc).__name__}: {exc}") from exc
