"""Hostile and slow clients against the server ``thinkstop serve`` runs (its own uvicorn
server, protocol and middleware), on loopback, with raw sockets: the key checked before
any body, bodies and headers with deadlines, a bounded number of connections, and a
readiness probe that names no model to a stranger."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReasoningServer, Script, ServerThread, words
from tests.hardening.proxies import config
from tests.proxy.conftest import LockedBuffer
from thinkstop.proxy.config import ProxyConfig
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.http.server import build_server
from thinkstop.proxy.upstreams.registry import build_upstream

KEY = "sk-slow-clients-master-0042"
QUICK = {"header_timeout_seconds": 0.5, "body_timeout_seconds": 0.5}
PARTIAL_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n"


@contextmanager
def served(cfg: ProxyConfig) -> Iterator[tuple[str, LockedBuffer]]:
    """The proxy under the server ``thinkstop serve`` builds (``build_server``)."""
    upstreams = {e.model_name: build_upstream(e.model_name, cfg.upstream_params(e))
                 for e in cfg.model_list}
    logs = LockedBuffer()
    app = create_app(cfg, upstreams, log_stream=logs)
    with ServerThread(server=build_server(app, cfg, host="127.0.0.1", port=0,
                                          lifespan="on")) as server:
        yield server.url, logs


def keyed(base: str, **general: Any) -> ProxyConfig:
    return config(base, {"master_key": "os.environ/THINKSTOP_MASTER_KEY", **general},
                  env={"THINKSTOP_MASTER_KEY": KEY})


@pytest.fixture(scope="module")
def proxy(fake_upstream: FakeReasoningServer) -> Iterator[tuple[str, LockedBuffer]]:
    with served(keyed(fake_upstream.base_url, **QUICK)) as pair:
        yield pair


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_reply(sock: socket.socket, timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one reply (``Content-Length`` framed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (what it sent before
    is skipped)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            break
        try:
            if not sock.recv(65536):
                return True
        except ConnectionError:
            return True
    return False


def head(length: int, key: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


# -- row 2: the key before the body ---------------------------------------------------
def test_a_huge_unauthenticated_body_gets_its_401_before_it_is_sent(
        proxy: tuple[str, LockedBuffer], fake: FakeReasoningServer) -> None:
    """100 clients declare 3.9 MB each, send 64 KB and stall: each is refused at once and
    its connection closed; nothing reaches the upstream."""
    url, logs = proxy
    with ExitStack() as stack:
        socks = [stack.enter_context(connect(url)) for _ in range(100)]
        started = time.monotonic()
        for sock in socks:
            sock.sendall(head(3_900_000) + b"x" * 65536)
        for sock in socks:
            status, headers, body = read_reply(sock)
            assert status == 401 and headers["connection"] == "close"
            assert json.loads(body)["error"]["code"] == "missing_api_key"
            assert headers["www-authenticate"] == "Bearer"
        assert time.monotonic() - started < 3.0  # not one body timeout (0.5 s) each
        assert all(closed_by_server(sock, 2.0) for sock in socks)
    assert fake.stats.requests == []
    assert logs.take().count('"auth_failed"') == 100


def test_a_wrong_key_is_refused_from_the_headers(proxy: tuple[str, LockedBuffer]) -> None:
    url, _ = proxy
    with connect(url) as sock:
        sock.sendall(head(1_000_000, "sk-not-the-key-0000"))  # and no body at all
        status, headers, body = read_reply(sock, timeout=2.0)
        assert closed_by_server(sock, 2.0)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert headers["connection"] == "close"


# -- row 3: bodies and headers with deadlines -----------------------------------------
@pytest.mark.parametrize("pace", ["stall", "trickle"])
def test_a_slow_body_gets_a_408_and_its_connection_closed(
        proxy: tuple[str, LockedBuffer], fake: FakeReasoningServer, pace: str) -> None:
    """A client with the key declares a body and stalls, or trickles a byte every 0.1 s
    (which would satisfy any per-read timeout): 408 at the 0.5 s deadline."""
    url, _ = proxy
    with connect(url) as sock:
        sock.sendall(head(100_000, KEY) + b'{"model": "chat"')
        started = time.monotonic()
        if pace == "trickle":
            sock.settimeout(0.1)
            for _ in range(30):
                try:
                    sock.sendall(b" ")
                    time.sleep(0.1)
                except OSError:
                    break  # the server gave up on us
                if select.select([sock], [], [], 0)[0]:
                    break  # the reply is there
        status, headers, body = read_reply(sock)
        elapsed = time.monotonic() - started
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert 0.4 < elapsed < 2.5
        assert closed_by_server(sock, 2.0)
    assert fake.stats.requests == []


def test_slow_headers_are_dropped_after_the_header_timeout(
        proxy: tuple[str, LockedBuffer]) -> None:
    """Slowloris: 50 connections sending one header byte every 0.1 s, and a kept-alive
    connection whose next request does the same: all closed at the 0.5 s deadline, while
    a normal request still gets through."""
    url, _ = proxy
    with ExitStack() as stack:
        socks = [stack.enter_context(connect(url)) for _ in range(50)]
        kept = stack.enter_context(connect(url))
        kept.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: proxy\r\n\r\n")
        assert read_reply(kept)[0] == 200
        socks.append(kept)
        started = time.monotonic()
        for sock in socks:
            sock.sendall(PARTIAL_HEAD)
        open_ = set(range(len(socks)))
        while open_ and time.monotonic() - started < 3.0:
            for i in list(open_):
                try:
                    socks[i].sendall(b"X")
                except OSError:
                    open_.discard(i)
                    continue
                if closed_by_server(socks[i], 0.0):
                    open_.discard(i)
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        assert not open_, f"{len(open_)} slow connections still open after {elapsed:.1f} s"
        assert elapsed < 2.0
        assert httpx.get(f"{url}/health/liveliness", timeout=5).status_code == 200


def test_huge_headers_are_dropped(proxy: tuple[str, LockedBuffer]) -> None:
    url, _ = proxy
    with connect(url) as sock:
        sock.sendall(PARTIAL_HEAD + b"X-Junk: " + b"a" * 100_000)  # past 64 KiB, unfinished
        assert closed_by_server(sock, 2.0)


def test_connections_are_bounded_and_the_slowest_go_first(
        fake_upstream: FakeReasoningServer, fake: FakeReasoningServer) -> None:
    """``max_connections: 8`` and a long header deadline: 30 slow clients keep at most
    8 connections between them, and a normal request still gets through (the connection
    waiting longest for its headers is closed to make room)."""
    cfg = keyed(fake_upstream.base_url, max_connections=8, header_timeout_seconds=30)
    fake.reset(Script(reasoning=words(20)))
    with served(cfg) as (url, _), ExitStack() as stack:
        socks = []
        for _ in range(30):
            sock = stack.enter_context(connect(url))
            sock.sendall(PARTIAL_HEAD)
            socks.append(sock)
        time.sleep(0.3)
        still_open = [s for s in socks if not closed_by_server(s, 0.05)]
        assert len(still_open) <= 8
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                           headers={"Authorization": f"Bearer {KEY}"},
                           json={"model": "chat", "messages": [{"role": "user", "content": "q"}]})
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"]


# -- row 12: readiness names models only to a caller with a key ------------------------
def test_readiness_names_models_only_with_a_key(proxy: tuple[str, LockedBuffer]) -> None:
    url, _ = proxy
    stranger = httpx.get(f"{url}/health/readiness", timeout=5)
    assert stranger.status_code == 200 and stranger.json() == {"status": "ready"}
    wrong = httpx.get(f"{url}/health/readiness", timeout=5,
                      headers={"Authorization": "Bearer sk-nope-0000"})
    assert wrong.json() == {"status": "ready"}
    known = httpx.get(f"{url}/health/readiness", timeout=5,
                      headers={"Authorization": f"Bearer {KEY}"})
    assert known.status_code == 200 and "chat" in known.json()["models"]
