"""The embedded local model on this machine: speed, probe cost, and halted vs unhalted.

Run::

    python -m thinkstop.benchmarks.perf.local_model          # the default 1.5B model
    python -m thinkstop.benchmarks.perf.local_model --model local/gemma3-270m \
        --max-tokens 128                                      # quick

Reports (medians where repeated; the machine may be shared, so compare figures from one
run only):

- load time; prompt processing and generation speed (tokens/s);
- the cost of one probe after the main stream's reasoning, with the KV cache reused
  (only the probe's own tokens run) and without it (the whole context runs again);
- end-to-end time of requests through the real proxy (uvicorn on loopback, HTTP
  streaming): the model alone (``enabled: false``), probing that never halts, and the
  halting policy; with token counts and the ``thinkstop`` decision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from typing import Any

from thinkstop.benchmarks.perf.sse_client import stream_chunks
from thinkstop.proxy.upstreams.base import ChatRequest, StreamEvent
from thinkstop.proxy.upstreams.local.adapter import DEFAULT_MODEL, LocalUpstream
from thinkstop.proxy.upstreams.local.engine import GREEDY, Token
from thinkstop.proxy.upstreams.prompts import probe_suffix

QUESTIONS = [
    # The paper's misleading-math item: the right answer (2) comes early, then drifts.
    "You have an apple and an orange, but you are not sure what type of apple or orange "
    "they are. Your friend gives you a riddle saying that there is a 61% probability that "
    "they are exactly a Red Delicious apple and a Navel orange. Calculate how many fruits "
    "you have.",
    "In a room there are 3 cats. Each cat sees 2 other cats. How many cats are in the room?",
    "A farmer has 17 sheep. All but 9 run away. How many sheep does the farmer have left?",
]
SPEED_PROMPT = "Explain step by step how to compute the greatest common divisor of 48 and 18."


def _request(question: str, **params: Any) -> ChatRequest:
    return ChatRequest(
        model="bench", messages=[{"role": "user", "content": question}], params=params
    )


async def _drain(stream: Any) -> list[StreamEvent]:
    return [event async for event in stream]


def _keep(_tokens: list[Token], _text: str) -> bool:
    return False


async def measure_speed(up: LocalUpstream, tokens: int) -> dict[str, float]:
    engine = up.engine
    prompt = list(engine.render([{"role": "user", "content": SPEED_PROMPT * 4}]).tokens)
    done = await asyncio.to_thread(engine.generate, prompt, max_tokens=1, sampling=GREEDY,
                                   on_tokens=_keep, cache=False)
    stamps: list[float] = []
    async for event in up.stream(_request(SPEED_PROMPT, max_tokens=tokens, temperature=0)):
        if event.kind in ("reasoning", "content"):
            stamps.append(time.perf_counter())
    generated = len(stamps)  # one event per token (exact counts from the adapter)
    decode_s = stamps[-1] - stamps[0] if generated > 1 else float("nan")
    return {
        "prompt_tokens": len(prompt),
        "prompt_tokens_per_s": float(done.timings.get("prompt_per_second", float("nan"))),
        "generated_tokens": generated,
        "generation_tokens_per_s": (generated - 1) / decode_s,
    }


async def measure_probe(up: LocalUpstream, reasoning_tokens: int, repeats: int) -> dict[str, Any]:
    """Probe cost after ``reasoning_tokens`` of real reasoning, with the main stream's
    cache reused (as the proxy runs it) and with every token evaluated again."""
    engine = up.engine
    request = _request(QUESTIONS[0], temperature=0)
    events = await _drain(up.stream(_request(QUESTIONS[0], max_tokens=reasoning_tokens,
                                             temperature=0)))
    reasoning = "".join(e.text for e in events if e.kind == "reasoning")
    context = up._context(request, reasoning)  # what the cache holds when the stream pauses
    suffix = engine.tokenize(probe_suffix(reasoning), special=True)
    rows: dict[str, list[tuple[float, int, str]]] = {"reuse": [], "no_reuse": []}
    for _ in range(repeats):
        await asyncio.to_thread(engine.generate, context, max_tokens=1, sampling=GREEDY,
                                on_tokens=_keep)
        before = engine.stats.evaluated
        start = time.perf_counter()
        result = await up.probe(request, reasoning, 16)
        rows["reuse"].append(
            (time.perf_counter() - start, engine.stats.evaluated - before, result.text))
        start = time.perf_counter()
        done = await asyncio.to_thread(
            engine.generate, [*context, *suffix], max_tokens=result.usage.completion_tokens,
            sampling=GREEDY, on_tokens=_keep, cache=False, top_n=up.probe_top_k + 1)
        rows["no_reuse"].append((time.perf_counter() - start, done.evaluated, result.text))
    out: dict[str, Any] = {"context_tokens": len(context), "probe_answer": rows["reuse"][0][2]}
    for mode, values in rows.items():
        out[f"{mode}_ms"] = 1000 * statistics.median(v[0] for v in values)
        out[f"{mode}_evaluated_tokens"] = int(statistics.median(v[1] for v in values))
    return out


class _Server:
    """The proxy app under uvicorn on loopback, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _post_stream(url: str, body: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    first: float | None = None
    content = ""
    decision: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    for chunk in stream_chunks(url, body):
        decision = chunk.get("thinkstop") or decision
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices", []):
            delta = choice.get("delta", {})
            if first is None and (delta.get("reasoning_content") or delta.get("content")):
                first = time.perf_counter()
            content += delta.get("content") or ""
    total = time.perf_counter() - start
    return {
        "total_s": round(total, 2),
        "ttft_s": round((first or start) - start, 3),
        "halted": decision.get("halted"),
        "reason": decision.get("reason"),
        "reasoning_tokens": decision.get("reasoning_tokens"),
        "probe_tokens": decision.get("probe_tokens"),
        "probes": decision.get("probes"),
        "answer_tokens": decision.get("answer_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "answer": " ".join(content.split())[:80],
    }


def measure_end_to_end(
    up: LocalUpstream, policy: str, chunk_tokens: int, max_tokens: int, questions: int,
    seed: int,
) -> list[dict[str, Any]]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.config import parse_config
    from thinkstop.proxy.http.app import create_app

    config = parse_config({
        "model_list": [{"model_name": "local", "litellm_params": {"model": up.name},
                        "thinkstop": {"policy": policy, "chunk_tokens": chunk_tokens}}],
    })
    modes = {
        "model alone (enabled: false)": {"enabled": False},
        "probing, never halts": {"policy": "confidence:threshold=1.0"},
        f"halting ({policy})": {},
    }
    rows = []
    with _Server(create_app(config, {"local": up})) as url:
        for question in QUESTIONS[:questions]:
            for mode, override in modes.items():
                body = {
                    "model": "local", "stream": True, "seed": seed,
                    "max_tokens": max_tokens, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": question}],
                    "thinkstop": override,
                }
                row = {"question": question[:40], "mode": mode, **_post_stream(url, body)}
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"model": args.model, "n_threads": args.threads, "n_ctx": 4096}
    if args.gguf:
        params["gguf"] = args.gguf
    start = time.perf_counter()
    up = LocalUpstream.from_params(args.model, params)
    report: dict[str, Any] = {
        "model": args.model, "file": str(up.engine.path), "threads": args.threads,
        "cpus": os.cpu_count(), "load_s": round(time.perf_counter() - start, 2),
    }
    try:
        report["speed"] = await measure_speed(up, args.speed_tokens)
        report["probe"] = await measure_probe(up, args.reasoning_tokens, args.repeats)
        if args.questions:
            report["end_to_end"] = await asyncio.to_thread(
                measure_end_to_end, up, args.policy, args.chunk_tokens, args.max_tokens,
                args.questions, args.seed,
            )
    finally:
        await up.aclose()
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"model {report['model']} ({report['file']}), {report['threads']} threads on "
          f"{report['cpus']} CPUs, loaded in {report['load_s']} s")
    s = report["speed"]
    print(f"prompt processing: {s['prompt_tokens_per_s']:.1f} tokens/s "
          f"({s['prompt_tokens']} tokens); generation: {s['generation_tokens_per_s']:.1f} "
          f"tokens/s ({s['generated_tokens']} tokens)")
    p = report["probe"]
    print(f"one probe after {p['context_tokens']} tokens of context "
          f"(answer {p['probe_answer']!r}):")
    print(f"  with KV reuse:    {p['reuse_ms']:8.0f} ms, {p['reuse_evaluated_tokens']} tokens run")
    print(f"  without KV reuse: {p['no_reuse_ms']:8.0f} ms, "
          f"{p['no_reuse_evaluated_tokens']} tokens run")
    rows = report.get("end_to_end") or []
    if rows:
        print("end to end through the proxy (streamed; seeded sampling):")
        print(f"  {'question':40} {'mode':32} {'total s':>8} {'ttft s':>7} {'halt':>5} "
              f"{'reason':>16} {'reas':>5} {'probe':>5} {'ans':>5}  answer")
        for r in rows:
            print(f"  {r['question']:40} {r['mode']:32} {r['total_s']:8.2f} {r['ttft_s']:7.3f} "
                  f"{r['halted']!s:>5} {r['reason']!s:>16} {r['reasoning_tokens']!s:>5} "
                  f"{r['probe_tokens']!s:>5} {r['answer_tokens']!s:>5}  {r['answer'][:40]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkstop.benchmarks.perf.local_model",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="local/... model id")
    parser.add_argument("--gguf", help="serve this GGUF file instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed-tokens", type=int, default=64)
    parser.add_argument("--reasoning-tokens", type=int, default=128,
                        help="reasoning before the probe")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=2, help="end-to-end questions (0: skip)")
    parser.add_argument("--max-tokens", type=int, default=384, help="per end-to-end request")
    parser.add_argument("--policy", default="consistency:window=2",
                        help="halting policy for the end-to-end runs")
    parser.add_argument("--seed", type=int, default=0,
                        help="sampling seed of the end-to-end requests (default sampling: "
                        "temperature 0.7, top_p 0.8)")
    parser.add_argument("--chunk-tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
