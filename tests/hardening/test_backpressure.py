"""A client that stops reading (issue 15, row 7): the proxy stops reading the upstream
once its bounded buffers are full, instead of reading the whole stream into memory.

The client is a raw socket with a small receive buffer that sends its request and never
reads; the upstream streams as fast as it can. What the upstream managed to send must
level off far below what it has to send. Between the proxy and the client the kernel's
send buffer holds data too (autotuned up to ``tcp_wmem``'s 4 MB, some 400,000 tokens in
the proxy's merged frames), so the proxy runs under the server ``thinkstop serve`` builds,
whose ``client_send_buffer_bytes`` bounds it (64 KB here, so that what the proxy itself
reads ahead shows within seconds).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes import FakeReasoningServer, Script, ServerThread, words
from tests.hardening.proxies import config
from tests.proxy.conftest import LockedBuffer, Proxy
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.http.server import ProxyServer, build_server
from thinkstop.proxy.upstreams.registry import build_upstream

ENDLESS = 200_000  # tokens the upstream would send, as fast as it can
NEVER_HALT = {"policy": "consistency:window=1000", "max_tokens": 1_000_000}


@pytest.fixture(scope="module")
def served(fake_upstream: FakeReasoningServer) -> Iterator[tuple[Proxy, ProxyServer]]:
    cfg = config(fake_upstream.base_url, {"client_send_buffer_bytes": 64 * 1024})
    upstreams = {e.model_name: build_upstream(e.model_name, cfg.upstream_params(e))
                 for e in cfg.model_list}
    logs = LockedBuffer()
    app = create_app(cfg, upstreams, log_stream=logs)
    server = build_server(app, cfg, host="127.0.0.1", port=0, lifespan="on",
                          loop="asyncio")
    with ServerThread(server=server) as thread:
        yield Proxy(f"{thread.url}/v1", logs), server


@pytest.fixture(scope="module")
def proxy(served: tuple[Proxy, ProxyServer]) -> Proxy:
    return served[0]


def unread_stream(proxy: Proxy, body: dict[str, Any]) -> socket.socket:
    """A streamed request sent on a socket that will never read its reply."""
    url = urlsplit(proxy.url)
    assert url.hostname is not None and url.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.connect((url.hostname, url.port))
    payload = json.dumps({**body, "stream": True}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


def levelled_off(fake: FakeReasoningServer, *, within: float = 10.0) -> int | None:
    """The upstream's count of tokens sent once it stops growing (no new token for a
    second); None when it still grows after ``within`` seconds (or finished)."""
    deadline = time.monotonic() + within
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        sent = fake.stats.reasoning_tokens_sent
        if sent != last:
            last, since = sent, time.monotonic()
        elif sent > 0 and time.monotonic() - since >= 1.0:
            return sent
        time.sleep(0.05)
    return None


@pytest.fixture
def endless(fake: FakeReasoningServer) -> Iterator[FakeReasoningServer]:
    fake.reset(Script(reasoning=words(ENDLESS)))
    yield fake


# n=1: the halting loop's read-ahead; n=2: the merge of two runs (http.fan_in) too.
@pytest.mark.parametrize(("n", "options"), [(1, NEVER_HALT), (2, {"enabled": False})])
def test_a_client_that_does_not_read_holds_the_upstream_back(
    proxy: Proxy, endless: FakeReasoningServer, n: int, options: dict[str, Any]
) -> None:
    sock = unread_stream(proxy, {"model": "chat", "n": n, "thinkstop": options,
                                 "messages": [{"role": "user", "content": "q"}]})
    try:
        sent = levelled_off(endless)
        # Buffered: the proxy's read-ahead and frames, and the socket buffers of the
        # upstream leg (some 6 MB on loopback, autotuned); never the stream.
        assert sent is not None, (
            f"the upstream kept streaming ({endless.stats.reasoning_tokens_sent} tokens)")
        assert sent < ENDLESS * n // 3
        assert endless.stats.streams_completed == 0
    finally:
        sock.close()
    # The client left: the paused upstream streams are closed, not left waiting.
    assert endless.wait(lambda s: s.open_requests == 0, 5)


def test_client_connections_get_the_configured_send_buffer(
    served: tuple[Proxy, ProxyServer],
) -> None:
    """Set explicitly, the kernel neither autotunes the buffer up to several MB nor lets
    a client that stops reading hold that much back (Linux reports double the value it
    was given, for its own bookkeeping)."""
    proxy, server = served
    url = urlsplit(proxy.url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port)) as client:
        client.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: proxy\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        sizes = [c.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET,
                                                                   socket.SO_SNDBUF)
                 for c in list(server.server_state.connections)]
    assert sizes and all(64 * 1024 <= size <= 2 * 64 * 1024 for size in sizes), sizes
