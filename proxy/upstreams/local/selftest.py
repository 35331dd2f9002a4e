"""The embedded engine's self-test, run in a subprocess before a model is served.

A llama.cpp build can hold instructions that a machine advertises but cannot run (AMX on
some virtual machines, AVX-512 or AVX2 missing on old CPUs). Such a build does not fail
at load: it dies with SIGILL on the first multi-token evaluation, taking the whole server
with it. So the model is first loaded in a child process that evaluates a short prompt
and generates a few tokens; a crash there becomes a :class:`SelfTestError` that names
the cause and the fix, and the server never starts on an engine that would die under
its first request. The child also measures prompt and generation speed, which seed the
probe timeout.

Run by hand: ``python -m thinkstop.proxy.upstreams.local.selftest --gguf PATH`` prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Long enough for prompt processing to run in batches (where the SIGILL cases hit), short
# enough to take about a second on a 2-core machine with the 1.5B default.
_PROMPT = ("You have an apple and an orange, but you are not sure what type of apple or "
           "orange they are. Calculate how many fruits you have, step by step.")
_GENERATE = 8

FIX = (
    "thinkstop's 'local' extra installs xllamacpp's portable CPU build, which needs an "
    "x86-64 CPU with AVX2, FMA and F16C (Intel Haswell, AMD Zen or newer) or a 64-bit ARM "
    "CPU. Fixes: run on such a CPU; or build xllamacpp for this one "
    "(pip install --no-binary xllamacpp --force-reinstall xllamacpp); or serve a remote "
    "model instead of the embedded one (thinkstop serve --config FILE). "
    "To skip the check, set selftest: false in the model's litellm_params."
)


class SelfTestError(RuntimeError):
    """The engine failed its self-test; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SelfTest:
    """What the self-test measured."""

    load_seconds: float
    prompt_tps: float
    gen_tps: float
    seconds: float


def run_selftest(path: Path, *, n_threads: int | None = None, timeout: float = 600.0,
                 command: list[str] | None = None) -> SelfTest:
    """Load ``path`` and run a short evaluation in a child process.

    ``command`` replaces the child's command line (tests use it to provoke a crash).
    Raises :class:`SelfTestError` when the child crashes, fails or runs out of time.
    """
    argv = command or [sys.executable, "-m", __name__, "--gguf", str(path)]
    if n_threads and command is None:
        argv += ["--threads", str(n_threads)]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise SelfTestError(
            f"the embedded llama.cpp engine did not finish its self-test on {path} within "
            f"{timeout:.0f} s; the machine may be overloaded or the file may not be a model"
        ) from None
    elapsed = time.perf_counter() - started
    if done.returncode < 0:
        raise SelfTestError(_crash(-done.returncode, path, done.stderr))
    if done.returncode != 0:
        raise SelfTestError(
            f"the embedded llama.cpp engine failed its self-test on {path}: "
            f"{_tail(done.stderr) or f'exit code {done.returncode}'}"
        )
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
        return SelfTest(float(data["load_seconds"]), float(data["prompt_tps"]),
                        float(data["gen_tps"]), elapsed)
    except (IndexError, KeyError, TypeError, ValueError):
        raise SelfTestError(
            f"the engine self-test on {path} printed no result: {_tail(done.stdout)!r}"
        ) from None


def _crash(signum: int, path: Path, stderr: str) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGILL:
        return (
            f"the embedded llama.cpp engine crashed with an illegal instruction (SIGILL) "
            f"while evaluating a short prompt with {path.name}: this CPU cannot run an "
            f"instruction that the installed llama.cpp build uses. {FIX}"
        )
    detail = _tail(stderr)
    return (
        f"the embedded llama.cpp engine crashed ({name}) in its self-test with {path.name}"
        + (f": {detail}" if detail else "") + f". {FIX}"
    )


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _child(path: Path, threads: int | None) -> dict[str, float]:
    from thinkstop.proxy.upstreams.local.engine import GREEDY, LocalEngine, Token

    started = time.perf_counter()
    engine = LocalEngine.load(path, n_ctx=1024, n_threads=threads, n_batch=32)
    loaded = time.perf_counter() - started
    tokens = engine.tokenize(_PROMPT)

    def keep(_tokens: list[Token], _text: str) -> bool:
        return False

    result = engine.generate(tokens, max_tokens=_GENERATE, sampling=GREEDY, on_tokens=keep)
    timings = result.timings
    engine.close()
    return {
        "load_seconds": round(loaded, 3),
        "prompt_tps": float(timings.get("prompt_per_second") or 0.0) or 1.0,
        "gen_tps": float(timings.get("predicted_per_second") or 0.0) or 1.0,
        "prompt_tokens": float(len(tokens)),
        "generated": float(result.generated),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m thinkstop.proxy.upstreams.local.selftest",
        description="Load a GGUF model with the embedded engine, evaluate a short prompt, "
                    "generate a few tokens, and print the measured speed as JSON.")
    parser.add_argument("--gguf", required=True, type=Path, help="the GGUF file to test")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.gguf, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
