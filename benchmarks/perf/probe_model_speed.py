"""Does probing slow the main stream? The main model's reasoning speed at the client, with
no probing, with probes on the main model, and with probes on a separate probe model.

Run::

    python -m thinkstop.benchmarks.perf.probe_model_speed                 # embedded gemma
    python -m thinkstop.benchmarks.perf.probe_model_speed --probe-model fake  # no model

The main model is the fake reasoning server (a real HTTP server on loopback) streaming
``--tokens`` reasoning tokens at a fixed pace (``--token-delay``), standing in for a
hosted reasoning API; the probe model is the embedded local model (``--probe-model``,
default ``local/gemma3-270m``), run by llama.cpp in the proxy's process. Requests go
through the real proxy (uvicorn on loopback, HTTP streaming) with a policy that never
halts, so every request streams the whole reasoning and probes at every boundary.

Reported per mode (medians over ``--repeats``; the machine may be shared, so compare
figures from one run only): the main stream's reasoning tokens/s as the client sees it
(first to last reasoning delta), the slowdown against no probing, probes answered, probe
tokens and seconds. The probe model answering in the proxy's process competes with the
proxy for CPU, and llama.cpp serves one request at a time, so on a small machine some
slowdown is expected; this script measures it instead of assuming it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

NEVER_HALTS = "consistency:window=100000"  # probes at every boundary, never agrees enough
QUESTION = "How many legs do 3 cats have?"


def _stream(url: str, model: str, options: dict[str, Any]) -> dict[str, Any]:
    from thinkstop.benchmarks.perf.sse_client import stream_chunks

    stamps: list[float] = []
    decision: dict[str, Any] = {}
    body = {"model": model, "stream": True, "thinkstop": options,
            "messages": [{"role": "user", "content": QUESTION}]}
    for chunk in stream_chunks(url, body):
        decision = chunk.get("thinkstop") or decision
        for choice in chunk.get("choices", []):
            if choice.get("delta", {}).get("reasoning_content"):
                stamps.append(time.perf_counter())
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    return {
        "reasoning_deltas": len(stamps),
        "tokens_per_s": (len(stamps) - 1) / span if span > 0 else float("nan"),
        "probes": decision.get("probes", 0),
        "probe_tokens": decision.get("probe_tokens", 0),
        "probe_seconds": decision.get("probe_seconds", 0.0),
        "halted": decision.get("halted"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app
    from thinkstop.proxy.testing import FakeReasoningServer, Script, ServerThread, words
    from thinkstop.proxy.upstreams.registry import build_upstream

    script = Script(reasoning=words(args.tokens), answer=[" <answer>12</answer>"],
                    probe_answers=[(0, "12")], token_delay=args.token_delay)
    with FakeReasoningServer(script) as fake:
        remote = {"model": "openai/fake", "api_base": fake.base_url, "api_key": "k"}
        knobs = {"chunk_tokens": args.chunk_tokens, "probe_tokens": 8, "policy": NEVER_HALTS}
        entries: list[dict[str, Any]] = [
            {"model_name": "main", "litellm_params": remote, "thinkstop": knobs},
        ]
        if args.probe_model == "fake":
            probe_params: dict[str, Any] = remote
        else:
            probe_params = {"model": args.probe_model}
        entries += [
            {"model_name": "main+probe", "litellm_params": remote,
             "thinkstop": {**knobs, "probe_model": "probe"}},
            {"model_name": "probe", "litellm_params": probe_params},
        ]
        config = parse_config({"model_list": entries})
        print(f"loading {probe_params['model']} as the probe model...", file=sys.stderr)
        upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                     for e in config.model_list}
        modes = {
            "no probing (enabled: false)": ("main", {"enabled": False}),
            "probes on the main model": ("main", {}),
            f"probes on {probe_params['model']}": ("main+probe", {}),
        }
        rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        with ServerThread(create_app(config, upstreams), lifespan="on") as server:
            for repeat in range(args.repeats):
                for mode, (model, options) in modes.items():  # interleaved: same load
                    row = _stream(server.url, model, options)
                    rows[mode].append(row)
                    print(json.dumps({"repeat": repeat, "mode": mode, **row}),
                          file=sys.stderr, flush=True)
    base = statistics.median(r["tokens_per_s"] for r in rows["no probing (enabled: false)"])
    report: dict[str, Any] = {
        "tokens": args.tokens, "token_delay_s": args.token_delay,
        "paced_tokens_per_s": round(1 / args.token_delay, 1) if args.token_delay else None,
        "chunk_tokens": args.chunk_tokens, "repeats": args.repeats, "modes": {},
    }
    for mode, chosen in rows.items():
        speed = statistics.median(r["tokens_per_s"] for r in chosen)
        report["modes"][mode] = {
            "tokens_per_s": round(speed, 2),
            "vs_no_probing": round(speed / base, 3),
            "probes": statistics.median(r["probes"] for r in chosen),
            "probe_tokens": statistics.median(r["probe_tokens"] for r in chosen),
            "probe_seconds": round(statistics.median(r["probe_seconds"] for r in chosen), 2),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe-model", default="local/gemma3-270m",
                        help="probe model: a local/... model, or 'fake' for the fake "
                             "server itself (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=400, help="reasoning tokens per request")
    parser.add_argument("--token-delay", type=float, default=0.02,
                        help="seconds per main-stream token (default 0.02: 50 tokens/s)")
    parser.add_argument("--chunk-tokens", type=int, default=32, help="probe every N tokens")
    parser.add_argument("--repeats", type=int, default=3, help="requests per mode")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"main stream: {args.tokens} reasoning tokens paced at "
          f"{report['paced_tokens_per_s']} tokens/s; probe every {args.chunk_tokens}")
    print(f"{'mode':40} {'tokens/s':>9} {'vs none':>8} {'probes':>7} {'probe tok':>10} "
          f"{'probe s':>8}")
    for mode, m in report["modes"].items():
        print(f"{mode:40} {m['tokens_per_s']:9.2f} {m['vs_no_probing']:8.3f} "
              f"{m['probes']:7} {m['probe_tokens']:10} {m['probe_seconds']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
