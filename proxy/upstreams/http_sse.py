"""HTTP plumbing shared by the native adapters: JSON posts and SSE reading over httpx.

Every transport failure becomes :class:`UpstreamError` here, so adapters never see an
httpx exception and the proxy never matches error text.

SSE lines are read with a size limit (``max_line_bytes``, :data:`MAX_LINE_BYTES` unless
the model's ``litellm_params.max_line_bytes`` says otherwise): a line that grows past it
is an ``oversized`` :class:`UpstreamError` as soon as the limit is passed, so one endless
line from a broken or hostile upstream never sits whole in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Final

import httpx

from thinkstop.proxy.upstreams.base import FailureKind, UpstreamError

# One SSE line (one chunk's JSON) at most: a real chunk is a few hundred bytes, a few KB
# with logprobs; 1 MiB leaves room for servers that send a tool call's arguments whole.
MAX_LINE_BYTES: Final = 1024 * 1024  # general_settings.upstream_max_line_bytes
LINE_KEY: Final = "max_line_bytes"  # the litellm_params key that overrides it per model
_LINE_END = re.compile(rb"\r\n|\r|\n")  # the three line ends the SSE spec allows
# What is read after ``[DONE]`` (normally only the body's last chunk) so that the
# connection goes back to the pool: closing a response before its end closes the
# connection, and a new one per request added about a millisecond to every stream's first
# token. A server that keeps sending or never ends its body is closed as before.
_DRAIN_SECONDS: Final = 0.25
_DRAIN_BYTES: Final = 64 * 1024
# An idle pooled connection is dropped by the client after this many seconds: well under
# the shortest server keep-alive seen (uvicorn, hence vLLM and SGLang: 5 s), so the client
# does not send on a connection the server is closing. httpx's default equals uvicorn's,
# which made the two race.
KEEPALIVE_EXPIRY: Final = 2.0
# What a pooled connection that the server closed as the request went out raises before
# any reply byte: the request was not served, so it is sent once more at once, on a new
# connection (as browsers do, RFC 9112 section 9.3.1). Timeouts are not among them.
_UNANSWERED: Final = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class ClientPool:
    """Several pooled clients used in turn, so that no one pool grows large.

    httpcore's pool does work proportional to its connections (and, with requests
    waiting, to connections times waiting requests) on every request and every response
    close (encode/httpcore#1035). At 200 concurrent streams with probes, one pool of 256
    made the pool bookkeeping cost several times the streaming itself; shards of a few
    dozen connections keep each pass short. ``timeout`` bounds connect and each read
    (not the whole stream).
    """

    def __init__(self, timeout: float | None, *, shards: int = 8,
                 connections_per_shard: int = 128,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        limits = httpx.Limits(max_connections=connections_per_shard,
                              max_keepalive_connections=max(1, connections_per_shard // 2),
                              keepalive_expiry=KEEPALIVE_EXPIRY)
        self._clients = [
            httpx.AsyncClient(timeout=httpx.Timeout(timeout or 600.0, connect=10.0),
                              limits=limits, transport=transport)
            for _ in range(1 if transport is not None else max(1, shards))
        ]
        self._turn = itertools.count()

    def pick(self) -> httpx.AsyncClient:
        """The client for the next request."""
        return self._clients[next(self._turn) % len(self._clients)]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def make_client(timeout: float | None,
                transport: httpx.AsyncBaseTransport | None = None) -> ClientPool:
    """The connection pool of one upstream; ``transport`` replaces the network (tests use
    ``httpx.MockTransport`` where wire realism is not the point)."""
    return ClientPool(timeout, transport=transport)


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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from model servers, not worth parsing


async def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        body = await response.aread()
        raise UpstreamError(
            f"upstream returned HTTP {response.status_code}: {_message_of(body)}",
            status_code=response.status_code, retry_after=_retry_after(response),
        )


def transport_failure(exc: httpx.HTTPError, what: str) -> UpstreamError:
    """An httpx failure as an :class:`UpstreamError` of the right kind."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.PoolTimeout):
        kind: FailureKind = "timeout"
    elif isinstance(exc, httpx.ConnectError | httpx.PoolTimeout):
        kind = "connect"
    else:
        kind = "protocol"  # reset or cut mid-reply: the reply broke, not the connection
    return UpstreamError(f"upstream {what} failed: {type(exc).__name__}: {exc}", kind=kind)


async def post_json(client: httpx.AsyncClient, url: str, body: Mapping[str, Any],
                    headers: Mapping[str, str]) -> dict[str, Any]:
    """POST and return the decoded JSON reply."""
    try:
        request = client.build_request("POST", url, json=body, headers=dict(headers))
        response = await _send(client, request, stream=False)
        await _check(response)
        payload = response.json()
    except httpx.HTTPError as exc:
        raise transport_failure(exc, "request") from exc
    except ValueError as exc:
        raise UpstreamError("upstream sent malformed JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamError("upstream sent a JSON reply that is not an object")
    return payload


def _finished(payload: dict[str, Any]) -> bool:
    choices = payload.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )


def oversized(limit: int) -> UpstreamError:
    """The failure of an upstream that sent more in one piece than ``limit`` bytes."""
    return UpstreamError(
        f"upstream sent an SSE line over {limit} bytes (litellm_params.max_line_bytes)",
        kind="oversized")


def text_chars(payload: Any) -> int:
    """Characters of text in a decoded chunk (every string in it), for adapters whose
    SDK reads the SSE line itself: a cheap lower bound on the line's size."""
    if isinstance(payload, str):
        return len(payload)
    if isinstance(payload, dict):
        return sum(text_chars(v) for v in payload.values())
    if isinstance(payload, list):
        return sum(text_chars(v) for v in payload)
    return 0


async def bounded_lines(chunks: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """The non-blank lines of a byte stream, without their line ends (the SSE reader
    needs no blank separators: one ``data:`` line is one chunk); raises :func:`oversized`
    as soon as a line passes ``limit`` bytes, so at most about ``limit`` plus one network
    read is ever held. (httpx's ``aiter_lines`` buffers a line whole, however long.)"""
    pending = b""
    async for data in chunks:
        if pending:
            data = pending + data  # a line split across reads: pending <= limit
        # bytes.split is several times faster than the regex; CRLF (sse-starlette's
        # default) is folded first, and only a bare CR (allowed by the spec, sent by no
        # model server seen) takes the regex.
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        lines = data.split(b"\n") if b"\r" not in data else _LINE_END.split(data)
        pending = lines.pop()
        if len(pending) > limit:
            raise oversized(limit)
        for line in lines:
            if line:
                if len(line) > limit:
                    raise oversized(limit)
                yield line
    if pending:
        yield pending


async def _drain(lines: AsyncIterator[bytes]) -> None:
    """Read the rest of a finished stream, within :data:`_DRAIN_SECONDS` and
    :data:`_DRAIN_BYTES`; what follows ``[DONE]`` is never passed on, and a failure here
    only costs the connection."""
    seen = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for line in lines:
                seen += len(line)
                if seen > _DRAIN_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError, UpstreamError):
        return


async def _send(client: httpx.AsyncClient, request: httpx.Request, *,
                stream: bool) -> httpx.Response:
    """``client.send``, a second time if the first attempt's connection closed before any
    reply (see :data:`_UNANSWERED`); once the reply has begun, a failure is the caller's."""
    try:
        return await client.send(request, stream=stream)
    except _UNANSWERED:
        return await client.send(request, stream=stream)


@contextlib.asynccontextmanager
async def _answered_stream(client: httpx.AsyncClient, url: str, body: Mapping[str, Any],
                           headers: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
    """``client.stream("POST", ...)`` through :func:`_send`."""
    request = client.build_request("POST", url, json=body, headers=dict(headers))
    response = await _send(client, request, stream=True)
    try:
        yield response
    finally:
        await response.aclose()


async def stream_sse(client: httpx.AsyncClient, url: str, body: Mapping[str, Any],
                     headers: Mapping[str, str], *, max_line_bytes: int = MAX_LINE_BYTES,
                     ) -> AsyncGenerator[dict[str, Any], None]:
    """POST and yield each SSE ``data:`` payload as JSON, until ``[DONE]``.

    A stream that ends with neither ``[DONE]`` nor a ``finish_reason`` was cut short and
    raises, so a truncation is never passed on as a finished answer; a line longer than
    ``max_line_bytes`` raises (``kind="oversized"``). Closing this generator (``aclose``)
    closes the HTTP response at once, so the server sees the disconnect and stops
    generating.
    """
    finished = False
    try:
        async with _answered_stream(client, url, body, headers) as response:
            await _check(response)
            lines = bounded_lines(response.aiter_bytes(), max_line_bytes)
            async for line in lines:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, event: lines
                data = line[5:].strip()
                if data == b"[DONE]":
                    await _drain(lines)
                    return
                try:
                    payload = json.loads(data)
                except ValueError as exc:  # UnicodeDecodeError included
                    raise UpstreamError("upstream sent a malformed SSE chunk") from exc
                if not isinstance(payload, dict):
                    raise UpstreamError("upstream sent an SSE chunk that is not an object")
                if "error" in payload:
                    raise UpstreamError(f"upstream error mid-stream: {_message_of(data)}")
                finished = finished or _finished(payload)
                yield payload
    except httpx.HTTPError as exc:
        raise transport_failure(exc, "stream") from exc
    if not finished:
        raise UpstreamError("upstream stream ended before it finished (no [DONE])")
