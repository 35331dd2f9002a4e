"""Load test: concurrent streaming requests through one proxy process, on loopback.

Three processes: a fast fake reasoning upstream, one thinkstop proxy (uvicorn with the
same settings as ``thinkstop serve``), and this client. Each round sends ``--concurrency``
streaming requests at once straight to the upstream (the baseline), then the same number
through the proxy, which probes every ``--chunk-tokens`` with a policy that never halts, so
both paths stream exactly the same tokens. It checks that every answer is complete (the
whole reasoning, the answer, one ``[DONE]``), and reports:

- requests/s through the proxy, and time to first token and total time, p50 and p99,
  direct and proxied (the difference is what the proxy adds under this load);
- the proxy's CPU seconds per streamed token (from ``/proc``, user + system);
- the proxy's resident memory after each round (flat = no leak).

Exit status 1 on any error, incomplete answer, or memory growth over ``--max-growth-mb``
between the first and last measured rounds. Loopback only, bounded request counts::

    python -m thinkstop.benchmarks.perf.load_test [--concurrency 200] [--rounds 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

ANSWER = "The answer is 42."




def _serve_fake(port: int, tokens: int, delay: float) -> None:
    import uvicorn

    from thinkstop.proxy.testing import FakeReasoningServer, Script, words

    fake = FakeReasoningServer(Script(reasoning=words(tokens), token_delay=delay))
    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, interface="asgi3", ws="none", lifespan="off")


def _serve_proxy(port: int, fake_url: str, chunk_tokens: int) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app
    from thinkstop.proxy.http.server import build_server
    from thinkstop.proxy.upstreams.registry import build_upstream

    config = parse_config({
        "model_list": [{"model_name": "load",
                        "litellm_params": {"model": "openai/fake", "api_base": fake_url},
                        "thinkstop": {"policy": "consistency:window=100000",
                                      "chunk_tokens": chunk_tokens}}],
        "general_settings": {"log_level": "warning"},
    }, environ={})
    upstreams = {e.model_name: build_upstream(e.model_name, config.upstream_params(e))
                 for e in config.model_list}
    with open(os.devnull, "w") as sink:
        app = create_app(config, upstreams, log_stream=sink)
        # The server `thinkstop serve` runs: its connection guard is part of the cost.
        build_server(app, config, host="127.0.0.1", port=port).run()


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds user+system, resident MiB) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cpu, rss_kb / 1024


@dataclass
class Sample:
    ttft: float
    total: float
    tokens: int


@dataclass
class Round:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0


async def _one(client: Any, url: str, body: dict[str, Any], reasoning: str,
               out: Round) -> None:
    started = time.perf_counter()
    first: float | None = None
    got_reasoning: list[str] = []
    got_content: list[str] = []
    done = tokens = 0
    try:
        async with client.stream("POST", url, json=body) as reply:
            if reply.status_code != 200:
                out.errors.append(f"HTTP {reply.status_code}: {(await reply.aread())[:200]!r}")
                return
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done += 1
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    out.errors.append(f"in-band error: {chunk['error']}")
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    for key, sink in (("reasoning_content", got_reasoning),
                                      ("content", got_content)):
                        if delta.get(key):
                            first = first or time.perf_counter()
                            sink.append(delta[key])
                            tokens += 1
    except Exception as exc:  # a load test counts every failure instead of stopping
        out.errors.append(f"{type(exc).__name__}: {exc}")
        return
    if done != 1 or "".join(got_content) != ANSWER or "".join(got_reasoning) != reasoning:
        out.errors.append(f"incomplete: done={done} content={''.join(got_content)!r} "
                          f"reasoning {len(''.join(got_reasoning))}/{len(reasoning)} chars")
        return
    end = time.perf_counter()
    out.samples.append(Sample((first or end) - started, end - started, tokens))


async def _round(url: str, model: str, concurrency: int, reasoning: str) -> Round:
    import httpx

    out = Round()
    body = {"model": model, "stream": True,
            "messages": [{"role": "user", "content": "How many apples are there?"}]}
    limits = httpx.Limits(max_connections=concurrency + 16,
                          max_keepalive_connections=concurrency + 16)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(_one(client, url, body, reasoning, out)
                               for _ in range(concurrency)))
        out.wall = time.perf_counter() - started
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (after 1 warm)")
    parser.add_argument("--tokens", type=int, default=128, help="reasoning tokens per stream")
    parser.add_argument("--token-delay", type=float, default=0.005,
                        help="upstream seconds per token (0.005 = 200 tokens/s per stream)")
    parser.add_argument("--chunk-tokens", type=int, default=32, help="probe every N tokens")
    parser.add_argument("--max-growth-mb", type=float, default=15.0)
    args = parser.parse_args(argv)

    from thinkstop.proxy.testing import free_port, words

    reasoning = "".join(words(args.tokens))
    ctx = multiprocessing.get_context("spawn")
    fake_port, proxy_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}/v1"
    fake = ctx.Process(target=_serve_fake, args=(fake_port, args.tokens, args.token_delay),
                       daemon=True)
    proxy = ctx.Process(target=_serve_proxy, args=(proxy_port, fake_url, args.chunk_tokens),
                        daemon=True)
    fake.start()
    proxy.start()
    try:
        _wait_ready(f"{fake_url}/models")
        _wait_ready(f"http://127.0.0.1:{proxy_port}/health/liveliness")
        assert proxy.pid is not None
        direct_url = f"{fake_url}/chat/completions"
        proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        return _run(args, reasoning, proxy.pid, direct_url, proxy_url)
    finally:
        for process in (proxy, fake):
            process.terminate()
            process.join(10)


def _run(args: argparse.Namespace, reasoning: str, pid: int, direct_url: str,
         proxy_url: str) -> int:
    direct, proxied, rss, cpu_per_token, rates = Round(), Round(), [], [], []
    errors = 0
    for index in range(args.rounds + 1):
        base = asyncio.run(_round(direct_url, "fake", args.concurrency, reasoning))
        cpu_before, _ = _proc_stat(pid)
        through = asyncio.run(_round(proxy_url, "load", args.concurrency, reasoning))
        time.sleep(0.5)  # let the proxy finish its bookkeeping before reading /proc
        cpu_after, rss_mb = _proc_stat(pid)
        errors += len(base.errors) + len(through.errors)
        for message in (base.errors + through.errors)[:5]:
            print(f"  error: {message}", file=sys.stderr)
        tokens = len(through.samples) * (args.tokens + 5)  # complete answers' tokens
        label = "warm-up" if index == 0 else f"round {index}"
        print(f"{label}: {len(through.samples)}/{args.concurrency} complete via proxy, "
              f"{len(base.samples)}/{args.concurrency} direct; proxy "
              f"{args.concurrency / through.wall:.0f} req/s, RSS {rss_mb:.1f} MiB, "
              f"{(cpu_after - cpu_before) / max(1, tokens) * 1e6:.1f} µs CPU/token")
        if index == 0:
            continue  # imports, pools and caches settle in the warm-up
        direct.samples += base.samples
        proxied.samples += through.samples
        rss.append(rss_mb)
        cpu_per_token.append((cpu_after - cpu_before) / max(1, tokens))
        rates.append(args.concurrency / through.wall)

    def line(name: str, pick: Any) -> str:
        d = [pick(s) * 1000 for s in direct.samples]
        p = [pick(s) * 1000 for s in proxied.samples]
        return (f"{name:<6} direct p50 {_pct(d, .5):7.1f} ms  p99 {_pct(d, .99):7.1f} ms | "
                f"proxy p50 {_pct(p, .5):7.1f} ms  p99 {_pct(p, .99):7.1f} ms | "
                f"added p50 {_pct(p, .5) - _pct(d, .5):+6.1f} ms  "
                f"p99 {_pct(p, .99) - _pct(d, .99):+6.1f} ms")

    growth = rss[-1] - rss[0] if rss else 0.0
    print(f"\n{args.rounds} rounds x {args.concurrency} concurrent streams, "
          f"{args.tokens} reasoning tokens + 5 answer tokens each, upstream "
          f"{args.token_delay * 1000:g} ms/token, probe every {args.chunk_tokens} tokens")
    print(f"errors: {errors}; complete answers: {len(proxied.samples)}/"
          f"{args.rounds * args.concurrency} via proxy")
    print(f"throughput via proxy: {sum(rates) / max(1, len(rates)):.0f} requests/s "
          f"({sum(rates) / max(1, len(rates)) * (args.tokens + 5):.0f} tokens/s)")
    print(line("TTFT", lambda s: s.ttft))
    print(line("total", lambda s: s.total))
    print(f"proxy CPU per streamed token: "
          f"{sum(cpu_per_token) / max(1, len(cpu_per_token)) * 1e6:.1f} µs (probes included)")
    print(f"proxy RSS per round (MiB): {', '.join(f'{r:.1f}' for r in rss)}; "
          f"growth first->last {growth:+.1f} MiB")
    ok = errors == 0 and len(proxied.samples) == args.rounds * args.concurrency
    ok = ok and growth <= args.max_growth_mb
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
