"""A pooled upstream connection that the server closes as the next request goes out.

Servers drop idle keep-alive connections on a timer (uvicorn, hence vLLM: 5 s). When the
timer fires just as the proxy reuses the connection, the request dies before any reply
byte; it was never served, so the proxy sends it again on a new connection instead of
failing the client's stream with a 502. The server here is a plain asyncio one on
loopback that answers the first request of every connection and closes the connection on
the second one, unanswered, which is that race made deterministic.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from thinkstop.proxy.upstreams.base import UpstreamError
from thinkstop.proxy.upstreams.http_sse import ClientPool, post_json, stream_sse

CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "8"}, "finish_reason": "stop"}]}
SSE = f"data: {json.dumps(CHUNK)}\n\ndata: [DONE]\n\n".encode()
JSON = json.dumps({"id": "c", "object": "chat.completion", "choices": []}).encode()


class ClosingServer:
    """Serves one request per connection, then closes the connection on the next."""

    def __init__(self) -> None:
        self.connections = 0
        self.served = 0
        self.dropped = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        requests = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                requests += 1
                if requests == 2:
                    self.dropped += 1
                    return  # the keep-alive timer fired: closed, unanswered
                body = SSE if b"/stream" in head.split(b"\r\n", 1)[0] else JSON
                kind = b"text/event-stream" if body is SSE else b"application/json"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                self.served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    pool = ClientPool(10.0, shards=1)
    yield pool.pick()
    await pool.aclose()


async def collect(client: httpx.AsyncClient, url: str) -> list[dict[str, object]]:
    return [chunk async for chunk in stream_sse(client, f"{url}/stream", {"stream": True}, {})]


async def test_a_stream_on_a_connection_closed_unanswered_is_sent_again(
    client: httpx.AsyncClient,
) -> None:
    server = ClosingServer()
    async with server as url:
        for _ in range(4):
            chunks = await collect(client, url)
            assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    # Every reuse was dropped and sent again on a new connection: 4 answers, none lost.
    assert server.served == 4 and server.dropped == 3 and server.connections == 4


async def test_a_json_request_on_a_connection_closed_unanswered_is_sent_again(
    client: httpx.AsyncClient,
) -> None:
    server = ClosingServer()
    async with server as url:
        for _ in range(3):
            assert (await post_json(client, f"{url}/json", {}, {}))["object"] == "chat.completion"
    assert server.served == 3 and server.dropped == 2


async def test_a_server_that_never_answers_fails_once_resent(client: httpx.AsyncClient) -> None:
    """The second send is the last: a server that closes every connection unanswered is an
    upstream failure, not a loop."""

    class NeverAnswers(ClosingServer):
        async def _handle(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

    server = NeverAnswers()
    async with server as url:
        with pytest.raises(UpstreamError, match="upstream stream failed"):
            await collect(client, url)
    assert server.connections == 2
