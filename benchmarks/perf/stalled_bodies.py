"""Memory under stalled, unauthenticated huge bodies (issue 15, row 2), on loopback.

One proxy process (``thinkstop serve``'s server: ``build_server``, keys configured) and
this client. The client opens ``--connections`` connections without a key; each declares
a body of ``--body-mb`` MB, sends all of it but the last byte, and stalls. Reported: the
proxy's resident memory before and while they stall, how many got a reply (401, or 408 at
the body deadline) and how many the proxy closed. ``--before`` switches the key check
before the body and the body deadline off, as the proxy was, for the comparison::

    python -m thinkstop.benchmarks.perf.stalled_bodies [--connections 100] [--before]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import socket
import sys
import time
from typing import Any

KEY = "sk-bench-stalled-bodies-0001"


def _serve(port: int, before: bool, ready: Any) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http import app as app_module
    from thinkstop.proxy.http.server import build_server
    from thinkstop.proxy.upstreams.registry import build_upstream

    if before:  # the proxy as it was: the key checked after the body, no body deadline
        from thinkstop.proxy.http.body_limit import BodyLimit

        class _Open:
            def __init__(self, app: Any, **_: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                await self.app(scope, receive, send)

        class _NoDeadline(BodyLimit):
            def __init__(self, app: Any, max_bytes: int, timeout: float | None = None) -> None:
                super().__init__(app, max_bytes, None)

        setattr(app_module, "KeyCheck", _Open)  # noqa: B010 - create_app reads these names
        setattr(app_module, "BodyLimit", _NoDeadline)  # noqa: B010
    config = parse_config({
        "model_list": [{"model_name": "m", "litellm_params": {
            "model": "openai/m", "api_base": "http://127.0.0.1:9/v1"}}],
        "general_settings": {"master_key": KEY},
    })
    upstreams = {e.model_name: build_upstream(e.model_name, config.upstream_params(e))
                 for e in config.model_list}
    app = app_module.create_app(config, upstreams, log_stream=open(os.devnull, "w"))  # noqa: SIM115
    build_server(app, config, host="127.0.0.1", port=port,
                 on_ready=lambda: ready.set()).run()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--body-mb", type=float, default=3.9)
    parser.add_argument("--stall-seconds", type=float, default=5.0)
    parser.add_argument("--before", action="store_true",
                        help="key check after the body, no body deadline (the old proxy)")
    args = parser.parse_args(argv)
    port = _free_port()
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=_serve, args=(port, args.before, ready), daemon=True)
    proc.start()
    if not ready.wait(60):
        print("the proxy did not start", file=sys.stderr)
        return 1
    assert proc.pid is not None
    time.sleep(0.5)
    rss_before = _rss_mb(proc.pid)
    size = int(args.body_mb * 1_000_000)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: "
            f"application/json\r\nContent-Length: {size}\r\n\r\n").encode()
    body = b"x" * (size - 1)
    socks = []
    started = time.monotonic()
    for _ in range(args.connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        socks.append(sock)
        sent, data = 0, head + body
        while sent < len(data) and time.monotonic() - started < 60:
            try:
                sent += sock.send(data[sent:])
            except BlockingIOError:
                if select.select([sock], [], [], 0)[0]:
                    break  # a reply (a refusal) is waiting: the proxy reads no more
                select.select([], [sock], [], 0.05)
            except OSError:
                break
    time.sleep(args.stall_seconds)
    rss_stalled = _rss_mb(proc.pid)
    replies, closed = 0, 0
    for sock in socks:
        try:
            data = sock.recv(65536)
            if data.startswith(b"HTTP/1.1 "):
                replies += 1
            elif not data:
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        sock.close()
    proc.terminate()
    proc.join(10)
    print(json.dumps({
        "mode": "before" if args.before else "after", "connections": args.connections,
        "body_mb": args.body_mb, "rss_mb_idle": round(rss_before, 1),
        "rss_mb_stalled": round(rss_stalled, 1),
        "rss_mb_added": round(rss_stalled - rss_before, 1),
        "replied": replies, "closed_without_reply": closed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
