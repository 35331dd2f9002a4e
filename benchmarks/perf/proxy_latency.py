"""The proxy's added latency against calling the same fake upstream directly.

Three paths, interleaved, each over real loopback HTTP, each server in its own process:

- ``direct``: client -> fake reasoning server;
- ``proxy``: client -> thinkstop (no probes: ``fixed`` policy above the stream length)
  -> fake;
- ``proxy+probes``: client -> thinkstop (a probe every ``chunk_tokens``, a policy that
  never halts, so the whole stream still runs) -> fake.

Reports medians of time to first token (TTFT, on short streams) and total time for a
``--tokens``-token reasoning stream, and the ratios, all measured in one run.

Run (the fake server is :mod:`thinkstop.proxy.testing`)::

    python -m thinkstop.benchmarks.perf.proxy_latency [--tokens 2000] \
        [--token-delay 0.001] [--repeats 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

MODELS = ("direct", "proxy", "proxy+probes")




def _serve_fake(port: int, tokens: int, delay: float) -> None:
    import uvicorn

    from thinkstop.proxy.testing import FakeReasoningServer, Script, words

    fake = FakeReasoningServer()
    fake.scripts["long"] = Script(reasoning=words(tokens), token_delay=delay,
                                  probe_answers=[(0, "1"), (64, "2")])
    fake.scripts["short"] = Script(reasoning=words(8), token_delay=delay)
    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, interface="asgi3", http="h11", ws="none", lifespan="off")


def _serve_proxy(port: int, fake_url: str, chunk_tokens: int) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app
    from thinkstop.proxy.http.server import build_server
    from thinkstop.proxy.upstreams.registry import build_upstream

    entries = []
    for upstream_model in ("long", "short"):
        entries.append({"model_name": f"proxy-{upstream_model}",
                        "litellm_params": {"model": f"openai/{upstream_model}",
                                           "api_base": fake_url},
                        "thinkstop": {"policy": "fixed:budget=1000000", "max_tokens": 1000000}})
        entries.append({"model_name": f"probes-{upstream_model}",
                        "litellm_params": {"model": f"openai/{upstream_model}",
                                           "api_base": fake_url},
                        "thinkstop": {"policy": "consistency:window=100000",
                                      "chunk_tokens": chunk_tokens, "max_tokens": 1000000}})
    config = parse_config({"model_list": entries, "general_settings": {"log_level": "warning"}})
    upstreams = {e.model_name: build_upstream(e.model_name, config.upstream_params(e))
                 for e in config.model_list}
    # The server `thinkstop serve` runs (uvloop and httptools when installed, and its
    # connection guard).
    build_server(create_app(config, upstreams), config, host="127.0.0.1", port=port).run()


@dataclass
class Sample:
    ttft: float
    total: float
    tokens: int


async def _one(client: Any, url: str, model: str) -> Sample:
    body = {"model": model, "stream": True,
            "messages": [{"role": "user", "content": "Count the apples."}]}
    started = time.perf_counter()
    ttft = 0.0
    tokens = 0
    async with client.stream("POST", url, json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if ttft == 0.0:
                delta = (json.loads(line[6:]).get("choices") or [{}])[0].get("delta") or {}
                if not (delta.get("reasoning_content") or delta.get("content")):
                    continue
                ttft = time.perf_counter() - started
            tokens += 1
    return Sample(ttft, time.perf_counter() - started, tokens)


async def _wait_ready(client: Any, url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (await client.get(url)).status_code < 500:
                return
        except httpx.TransportError:
            await asyncio.sleep(0.1)  # not listening yet
    raise TimeoutError(f"server at {url} did not start")


def _route(kind: str, size: str, fake: str, proxy: str) -> tuple[str, str]:
    if kind == "direct":
        return f"{fake}/chat/completions", size
    prefix = "proxy" if kind == "proxy" else "probes"
    return f"{proxy}/chat/completions", f"{prefix}-{size}"


async def _measure(fake: str, proxy: str, repeats: int, ttft_repeats: int
                   ) -> dict[str, dict[str, list[float]]]:
    import httpx

    results: dict[str, dict[str, list[float]]] = {k: {"ttft": [], "total": []} for k in MODELS}
    async with httpx.AsyncClient(timeout=120) as client:
        await _wait_ready(client, f"{fake}/models")
        await _wait_ready(client, f"{proxy}/models")
        for kind in MODELS:  # warm-up: connections, imports, first-call paths
            url, model = _route(kind, "short", fake, proxy)
            await _one(client, url, model)
        for _ in range(ttft_repeats):
            for kind in MODELS:
                url, model = _route(kind, "short", fake, proxy)
                results[kind]["ttft"].append((await _one(client, url, model)).ttft)
        for _ in range(repeats):
            for kind in MODELS:
                url, model = _route(kind, "long", fake, proxy)
                results[kind]["total"].append((await _one(client, url, model)).total)
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    base = med["direct"]
    lines = [
        f"proxy latency: {args.tokens}-token reasoning stream, {args.token_delay * 1000:g} ms "
        f"per token from the fake upstream, probes every {args.chunk_tokens} tokens; medians "
        f"of {args.ttft_repeats} TTFT runs and {args.repeats} full-stream runs",
        f"{'path':<14}{'TTFT ms':>10}{'added ms':>10}{'total s':>10}{'added %':>10}",
    ]
    for kind in MODELS:
        m = med[kind]
        added_ttft = (m["ttft"] - base["ttft"]) * 1000
        added_total = (m["total"] / base["total"] - 1) * 100
        lines.append(f"{kind:<14}{m['ttft'] * 1000:>10.2f}{added_ttft:>10.2f}"
                     f"{m['total']:>10.3f}{added_total:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkstop.benchmarks.perf.proxy_latency",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=2000, help="reasoning tokens per stream")
    parser.add_argument("--token-delay", type=float, default=0.001,
                        help="seconds per token from the fake upstream (0 = as fast as it can)")
    parser.add_argument("--repeats", type=int, default=7, help="full-stream runs per path")
    parser.add_argument("--ttft-repeats", type=int, default=30, help="short runs per path")
    parser.add_argument("--chunk-tokens", type=int, default=64, help="probe interval")
    parser.add_argument("--json", action="store_true", help="print raw samples as JSON too")
    args = parser.parse_args(argv)
    from thinkstop.proxy.testing import free_port

    ctx = multiprocessing.get_context("spawn")
    fake_port, proxy_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}/v1"
    proxy_url = f"http://127.0.0.1:{proxy_port}/v1"
    children = [
        ctx.Process(target=_serve_fake, args=(fake_port, args.tokens, args.token_delay),
                    daemon=True),
        ctx.Process(target=_serve_proxy, args=(proxy_port, fake_url, args.chunk_tokens),
                    daemon=True),
    ]
    for child in children:
        child.start()
    try:
        results = asyncio.run(_measure(fake_url, proxy_url, args.repeats, args.ttft_repeats))
    finally:
        for child in children:
            child.terminate()
            child.join(timeout=10)
    print(report(results, args))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
