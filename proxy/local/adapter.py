"""``LocalUpstream``: the embedded llama.cpp model behind the async upstream protocol.

One model instance. Every llama.cpp call runs on one dedicated worker thread, so the event
loop never blocks and calls never overlap; a request's main stream and its continuation
also hold an asyncio lock, so two requests take turns instead of evicting each other's KV
cache token by token. Probes skip that lock: they run between two steps of their own
request's main stream and reuse its cache.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from proxy.local.engine import ContextFull, LocalEngine, Prompt
from proxy.local.model_files import ModelFilesError, default_model_path, smollm2_path
from proxy.local.sampling import Sampler, Sampling
from proxy.local.turns import Transcript, answer_events, chat_events, fresh_context, run_probe
from proxy.upstreams.base import (
    Capabilities,
    ChatRequest,
    Continuation,
    EventStream,
    ProbeResult,
    StreamEvent,
    UpstreamError,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
StopCheck = Callable[[], bool]
Events = Generator[StreamEvent, None, None]

PREFIX = "local/"
DEFAULT_MODEL = "local/qwen2.5-coder-1.5b"
# Model names served without a ``gguf`` path: where their file comes from.
EMBEDDED: dict[str, Callable[[], Path]] = {
    "qwen2.5-coder-1.5b": default_model_path,
    "smollm2-135m": smollm2_path,
}
_TRANSCRIPTS = 8  # recent main streams whose tokens probes and continuations can reuse


class LocalUpstream:
    """An in-process GGUF model (see module docstring)."""

    capabilities = Capabilities(
        continuations=("raw", "prefill"),
        logprobs=True,
        hides_reasoning=False,
        exact_token_counts=True,
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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thinkstop-llama")
        self._turn = asyncio.Lock()
        self._transcripts: OrderedDict[tuple[int, ...], Transcript] = OrderedDict()
        self._closed = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LocalUpstream:
        """Build from a config entry's ``litellm_params`` and load the model (once).

        ``model``: ``local/qwen2.5-coder-1.5b`` (the embedded default, assembled on first
        use), ``local/smollm2-135m`` (the test model), or any ``local/NAME`` with ``gguf``.
        ``gguf``: a GGUF file to serve instead. Optional: ``n_ctx`` (8192), ``n_threads``
        (CPU count, at most 8), ``thinking`` (``auto`` detects native ``<think>`` from the
        chat template; ``native`` or ``prompted`` force it), ``temperature`` (0.7),
        ``top_p`` (0.8), ``top_k`` (40), ``seed``, ``max_tokens`` (4096, per main
        stream), ``answer_max_tokens`` (1024), ``probe_top_k`` (5).
        """
        from proxy.upstreams.factory import UpstreamConfigError

        model = str(params.get("model") or DEFAULT_MODEL)
        try:
            engine = _load(model, params)
        except (ModelFilesError, OSError, ValueError) as exc:
            raise UpstreamConfigError(f"{model}: {exc}") from exc
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

    def stream(self, request: ChatRequest) -> EventStream:
        """Reasoning, then answer, then finish and usage events (exact token counts)."""
        sampler = Sampler(self.sampling.with_params(request.params))
        limit = _max_tokens(request.params, self.max_tokens)

        def events(should_stop: StopCheck) -> Events:
            prompt = self.engine.render(request.messages)
            transcript = Transcript(prompt)
            self._remember(prompt, transcript)
            yield from chat_events(self.engine, prompt, transcript, sampler, limit, should_stop)

        return self._drive(events)

    async def probe(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        """Greedy forced answer with log probabilities from the last-position logits."""
        return await self._guarded(self._probe_sync, request, reasoning, max_tokens)

    def continue_answer(
        self, request: ChatRequest, reasoning: str, strategy: Continuation
    ) -> EventStream:
        """Raw continuation: prompt + reasoning + ``</think>``, then the model's answer.

        ``prefill`` is the same thing for an in-process model (the assistant turn is
        pre-filled with the reasoning).
        """
        if strategy not in self.capabilities.continuations:
            raise ValueError(f"the local model does not support the {strategy!r} continuation")
        sampler = Sampler(self.sampling.with_params(request.params))
        limit = _max_tokens(request.params, self.answer_max_tokens)

        def events(should_stop: StopCheck) -> Events:
            context = self._context(request, reasoning)
            yield from answer_events(self.engine, context, reasoning, sampler, limit, should_stop)

        return self._drive(events)

    async def aclose(self) -> None:
        """Stop the worker thread once queued work is done, and free the model (when this
        upstream owns its engine)."""
        if self._closed:
            return
        if self._owns_engine:
            await self._call(self.engine.close)
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    # -- worker-thread side ----------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the local model is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`_call`, with model failures turned into :class:`UpstreamError`."""
        try:
            return await self._call(fn, *args)
        except ContextFull as exc:
            raise UpstreamError(str(exc), status_code=400) from exc
        except (RuntimeError, ValueError) as exc:  # how llama.cpp reports decode failures
            raise UpstreamError(f"local model failed: {exc}") from exc

    async def _drive(self, make: Callable[[StopCheck], Events]) -> EventStream:
        """Steps a synchronous event generator on the worker thread, one event per step.

        Closing this stream (``aclose``, cancellation) sets the stop flag, which a long
        prompt evaluation checks between batches, and closes the generator on the worker
        thread after any step in flight: no token is generated after that.
        """
        stop = threading.Event()
        async with self._turn:
            events = make(stop.is_set)
            try:
                while True:
                    event = await self._guarded(next, events, None)
                    if event is None:
                        return
                    yield event
            finally:
                stop.set()
                if not self._closed:
                    self._executor.submit(events.close)

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

    def _probe_sync(self, request: ChatRequest, reasoning: str, max_tokens: int) -> ProbeResult:
        context = self._context(request, reasoning)
        return run_probe(self.engine, context, reasoning, max_tokens, self.probe_top_k)


def _load(model: str, params: Mapping[str, Any]) -> LocalEngine:
    if not model.startswith(PREFIX):
        raise ValueError(f"local model ids start with {PREFIX!r}")
    short = model[len(PREFIX) :]
    gguf = params.get("gguf")
    if gguf:
        path = Path(str(gguf)).expanduser()
        if not path.is_file():
            raise ValueError(f"gguf file not found: {path}")
    elif short in EMBEDDED:
        path = EMBEDDED[short]()
    else:
        raise ValueError(
            f"unknown local model: use one of {', '.join(PREFIX + k for k in EMBEDDED)}, "
            "or give a gguf path (thinkstop serve --gguf PATH)"
        )
    thinking = params.get("thinking", "auto")
    if thinking not in ("auto", "native", "prompted"):
        raise ValueError(f"thinking must be auto, native or prompted, not {thinking!r}")
    return LocalEngine.load(
        path,
        n_ctx=int(params.get("n_ctx", 8192)),
        n_threads=int(params["n_threads"]) if params.get("n_threads") else None,
        thinking=thinking,
    )


def _max_tokens(params: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        if params.get(key) is not None:
            return int(params[key])
    return default
