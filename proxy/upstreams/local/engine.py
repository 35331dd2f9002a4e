"""One GGUF model run by llama.cpp's own server engine inside this process (xllamacpp).

Why this engine: xllamacpp publishes prebuilt CPU wheels for a portable x86-64 baseline
(AVX2, FMA, F16C; no AVX-512 and no AMX code at all) and glibc 2.17, so ``pip install``
takes seconds instead of compiling llama.cpp for the host CPU, and the binary cannot
execute an instruction that a machine merely advertises (the AMX-in-``cpuid`` VMs that
killed the first version with SIGILL). Extra buffer types (llama.cpp's repacked weight
layouts) stay off as a second guard; on this model they made no measurable difference.

The engine keeps one server slot. The main stream, its probes and the continuation of a
request all run in that slot, so llama.cpp's prompt cache reuses their longest common
token prefix: a probe costs its own suffix, and the main stream resumes for the cost of
the few tokens it had generated past the probe's cut. ``swa_full`` keeps the whole cache
of sliding-window models (Gemma 3) so that reuse is not limited to a window.

The server's HTTP listener (loopback, random port) carries only the tokenizer and chat
template calls; it is locked with a random key so nothing else on the machine can use it.
Generation goes through the in-process call with a per-chunk callback, which is also how
a long prompt or a generation is abandoned (the callback returns True).
"""

from __future__ import annotations

import functools
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import structlog

from thinkstop.proxy.upstreams.local.prompted import (
    PREFILL,
    ThinkingMode,
    detect_thinking,
    plain_messages,
    prompted_messages,
)
from thinkstop.proxy.upstreams.templates import Template, resolve_template
from thinkstop.proxy.upstreams.thinking import THINK_OPEN

log = structlog.get_logger(__name__)

# End-of-turn markers of common chat formats; those that are one special token in a model's
# vocabulary join its end-of-generation set (banned where an answer must not be empty).
_END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>", "<|end|>",
                "<|end_of_text|>", "</s>")


class EngineError(RuntimeError):
    """llama.cpp refused or failed a call; ``status`` is its HTTP-style code."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class ContextFull(EngineError):
    """The tokens do not fit in the model's context window."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A rendered chat prompt; ``opened`` when it ends inside a ``<think>`` block."""

    text: str
    tokens: tuple[int, ...]
    opened: bool


@dataclass(slots=True)
class EvalStats:
    """Counters that make KV reuse observable (tests and the benchmark read them)."""

    evaluated: int = 0  # prompt tokens run through the model
    reused: int = 0  # prompt tokens served from the cache instead
    calls: int = 0


@dataclass(slots=True)
class Speed:
    """Running estimates of this machine's speed for this model, in tokens per second.

    Seeded by the load-time self-test and updated after every call (exponentially
    weighted), so timeouts follow the engine as the machine gets busier or quieter.
    """

    prompt_tps: float = 50.0
    gen_tps: float = 10.0
    weight: float = 0.3

    def update(self, timings: Mapping[str, Any]) -> None:
        for key, attr, count in (("prompt_per_second", "prompt_tps", "prompt_n"),
                                 ("predicted_per_second", "gen_tps", "predicted_n")):
            value = timings.get(key)
            # Very short runs are dominated by fixed overheads; they would skew the rate.
            if isinstance(value, int | float) and value > 0 and int(timings.get(count, 0)) >= 4:
                old = getattr(self, attr)
                setattr(self, attr, (1 - self.weight) * old + self.weight * float(value))

    def seconds(self, prompt_tokens: int, generated_tokens: int) -> float:
        return prompt_tokens / self.prompt_tps + generated_tokens / self.gen_tps


@dataclass(frozen=True, slots=True)
class Candidate:
    """One of the most likely tokens at a position, with its log probability."""

    token: int
    text: str
    logprob: float


@dataclass(frozen=True, slots=True)
class Token:
    """A generated token: its id, its bytes, its log probability (under the model's own
    distribution, before sampling), and the top candidates when asked. A character may
    span several tokens, so text is decoded from the bytes of a run of tokens."""

    id: int
    raw: bytes
    logprob: float
    top: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling settings; ``temperature <= 0`` means greedy."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 40
    seed: int | None = None

    def with_params(self, params: Mapping[str, Any]) -> Sampling:
        """These defaults overridden by the OpenAI fields a client sent."""
        changes: dict[str, Any] = {}
        for key, cast in (("temperature", float), ("top_p", float), ("seed", int)):
            if params.get(key) is not None:
                changes[key] = cast(params[key])
        return replace(self, **changes)

    def body(self, offset: int) -> dict[str, Any]:
        """llama.cpp request fields; ``offset`` (tokens generated before this call) moves
        the seed on, so a generation resumed after a probe does not repeat its draws."""
        seed = -1 if self.seed is None else (self.seed + offset) % (2**32 - 1)
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "min_p": 0.0, "seed": seed}


GREEDY = Sampling(temperature=0.0)

# Return True to stop: called with each chunk of generated tokens and their decoded text.
OnTokens = Callable[[list[Token], str], bool]


@dataclass(slots=True)
class Completion:
    """How one generation call ended."""

    finish: Literal["stop", "length", "stopped"] = "length"
    evaluated: int = 0  # prompt tokens the model had to run
    reused: int = 0  # prompt tokens the cache held
    generated: int = 0
    timings: dict[str, Any] = field(default_factory=dict)


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LocalEngine:
    """One loaded GGUF model (see the module docstring). Thread-safe."""

    def __init__(self, server: Any, *, path: Path, n_ctx: int, address: str, key: str,
                 thinking: ThinkingMode | Literal["auto"] = "auto",
                 chat_template: str | None = None) -> None:
        self._server = server
        self.path = path
        self.n_ctx = n_ctx
        self.stats = EvalStats()
        self.speed = Speed()
        self._stats_lock = threading.Lock()
        self._http = httpx.Client(base_url=address, timeout=60.0,
                                  headers={"Authorization": f"Bearer {key}"})
        props = self._get("/props")
        # A configured template (a built-in name or Jinja) wins over the GGUF's own; a
        # GGUF without one gets llama.cpp's ChatML fallback.
        self._template: Template | None = (
            resolve_template(chat_template) if chat_template else None)
        template = chat_template or props.get("chat_template") or None
        self.chat_template: str | None = template
        self.thinking: ThinkingMode = detect_thinking(template) if thinking == "auto" else thinking
        self.bos_token: str = str(props.get("bos_token") or "")
        self.eos_token: str = str(props.get("eos_token") or "")
        self._bos_id = self._single(self.bos_token)
        self.eog_ids: frozenset[int] = frozenset(
            t for t in (self._single(m) for m in {self.eos_token, *_END_MARKERS} if m)
            if t is not None
        )
        self._closed = False

    @classmethod
    def load(cls, path: Path, *, n_ctx: int = 8192, n_threads: int | None = None,
             n_batch: int = 256, thinking: ThinkingMode | Literal["auto"] = "auto",
             chat_template: str | None = None, cache_ram_mib: int = 1024) -> LocalEngine:
        """Load ``path`` (xllamacpp is imported here, so the extra stays optional)."""
        try:
            import xllamacpp
        except ImportError as exc:
            raise EngineError(
                "the embedded model needs the 'local' extra: pip install 'thinkstop[local]'"
            ) from exc
        threads = n_threads or default_threads()
        key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.no_extra_bufts = True
        params.swa_full = True
        params.cache_prompt = True
        # llama.cpp keeps evicted prompt states in host memory and restores the best match
        # for a new request (requests that take turns get theirs back); bounded here.
        params.cache_ram_mib = cache_ram_mib
        params.warmup = False
        params.verbosity = -1  # llama.cpp's own log would flood the terminal
        params.api_keys = [key]
        params.hostnames = ["127.0.0.1"]
        params.endpoint_metrics = False
        params.endpoint_slots = False
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:  # xllamacpp raises plain RuntimeError/ValueError on load
            raise EngineError(f"llama.cpp could not load {path}: {exc}") from exc
        engine = cls(server, path=path, n_ctx=n_ctx, address=str(server.listening_address),
                     key=key, thinking=thinking, chat_template=chat_template)
        log.info("local model loaded", path=str(path), n_ctx=n_ctx, n_threads=threads,
                 thinking=engine.thinking, size_mb=round(path.stat().st_size / 1e6))
        return engine

    # -- tokenizer and template (the server's HTTP side) -----------------------------------
    def _post(self, route: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            reply = self._http.post(route, json=dict(body))
        except httpx.HTTPError as exc:
            raise EngineError(f"llama.cpp {route} failed: {exc}") from exc
        data: dict[str, Any] = reply.json() if reply.content else {}
        if reply.status_code != 200:
            raise EngineError(f"llama.cpp {route}: {_message(data)}", reply.status_code)
        return data

    def _get(self, route: str) -> dict[str, Any]:
        try:
            reply = self._http.get(route)
        except httpx.HTTPError as exc:
            raise EngineError(f"llama.cpp {route} failed: {exc}") from exc
        if reply.status_code != 200:
            raise EngineError(f"llama.cpp {route}: HTTP {reply.status_code}", reply.status_code)
        data: dict[str, Any] = reply.json()
        return data

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokens of ``text`` with no BOS; ``special`` parses tags like ``<|im_end|>``."""
        if not text:
            return []
        if len(text) <= 64:
            return list(self._tokenize_short(text, special))
        return self._tokenize(text, special)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one engine per process; tags repeat
    def _tokenize_short(self, text: str, special: bool) -> tuple[int, ...]:
        return tuple(self._tokenize(text, special))

    def _tokenize(self, text: str, special: bool) -> list[int]:
        data = self._post("/tokenize", {"content": text, "parse_special": special,
                                        "add_special": False})
        return [int(t) for t in data.get("tokens", [])]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not tokens:
            return ""
        return str(self._post("/detokenize", {"tokens": list(tokens)}).get("content", ""))

    def _single(self, text: str) -> int | None:
        """The id of ``text`` when it is exactly one special token of this vocabulary."""
        if not text:
            return None
        ids = self._tokenize(text, True)
        return ids[0] if len(ids) == 1 else None

    def render(self, messages: list[dict[str, Any]]) -> Prompt:
        """The generation prompt for ``messages``, by the model's own chat template.

        Models that do not think natively get the thinking instruction as a system turn
        and an assistant turn pre-filled with ``<think>\\n``.
        """
        if self.thinking == "prompted":
            text = self.apply_template(prompted_messages(messages)) + PREFILL
        else:
            text = self.apply_template(plain_messages(messages))
        opened = text.rstrip().endswith(THINK_OPEN)
        tokens = self.tokenize(text, special=True)
        if self._bos_id is not None and tokens[:1] != [self._bos_id] and self._wants_bos():
            tokens.insert(0, self._bos_id)
        return Prompt(text=text, tokens=tuple(tokens), opened=opened)

    @functools.cached_property
    def _add_bos(self) -> bool:
        probe = self._post("/tokenize", {"content": "a", "add_special": True})
        return bool(probe.get("tokens")) and probe["tokens"][0] == self._bos_id

    def _wants_bos(self) -> bool:
        return self._add_bos

    def apply_template(self, messages: list[dict[str, Any]]) -> str:
        if self._template is not None:
            return self._template(messages)
        data = self._post("/apply-template", {"messages": messages})
        return str(data.get("prompt", ""))

    # -- generation (the in-process side) --------------------------------------------------
    def generate(self, tokens: Sequence[int], *, max_tokens: int, sampling: Sampling,
                 on_tokens: OnTokens, should_stop: Callable[[], bool] | None = None,
                 top_n: int = 1, ban: Sequence[int] = (), offset: int = 0,
                 cache: bool = True) -> Completion:
        """Generate after ``tokens`` until end of generation, ``max_tokens``, or until
        ``on_tokens`` or ``should_stop`` returns True (``finish="stopped"``).

        ``should_stop`` is also checked between batches of a long prompt. ``ban`` lists
        tokens that may not be sampled (their log probabilities are still reported).
        ``cache=False`` evaluates every token again (benchmarks measure reuse with it).
        Blocking: call it from a worker thread.
        """
        if not tokens:
            raise ValueError("cannot generate after an empty token sequence")
        if len(tokens) >= self.n_ctx:
            raise ContextFull(f"{len(tokens)} tokens fill the context of {self.n_ctx}")
        body: dict[str, Any] = {
            "prompt": list(tokens), "max_tokens": max_tokens, "stream": True,
            "return_progress": True, "n_probs": max(1, top_n), "cache_prompt": cache,
            **sampling.body(offset),
        }
        if ban:
            body["logit_bias"] = [[int(t), False] for t in ban]
        done = Completion()
        error: list[str] = []
        stop = should_stop or _never

        def callback(chunk: Mapping[str, Any]) -> bool:
            if "error" in chunk:
                error.append(_message(chunk))
                return True
            progress = chunk.get("prompt_progress")
            if isinstance(progress, Mapping):
                done.reused = int(progress.get("cache", 0))
                done.evaluated = int(progress.get("total", 0)) - done.reused
                return bool(stop())
            choice = (chunk.get("choices") or [{}])[0]
            if isinstance(chunk.get("timings"), Mapping):
                done.timings = dict(chunk["timings"])
            if choice.get("finish_reason") in ("stop", "length"):
                done.finish = choice["finish_reason"]
            out = _tokens(choice)
            if not out:
                return bool(stop())
            done.generated += len(out)
            if on_tokens(out, str(choice.get("text") or "")) or stop():
                done.finish = "stopped"
                return True
            return False

        self._server.handle_completions(body, callback)
        if error:
            message = error[0]
            if "context" in message and "exceed" in message:
                raise ContextFull(message)
            raise EngineError(f"llama.cpp: {message}")
        if done.finish != "stopped" and not done.timings and done.generated == 0 and stop():
            done.finish = "stopped"  # abandoned during the prompt
        with self._stats_lock:
            self.stats.calls += 1
            self.stats.evaluated += done.evaluated
            self.stats.reused += done.reused
            self.speed.update(done.timings)
        return done

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._http.close()
        # Dropping the last reference stops the server's threads and frees the model.
        self._server = None


def _never() -> bool:
    return False


def _message(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    return str(error or data)


def _tokens(choice: Mapping[str, Any]) -> list[Token]:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not content:
        return []
    out = []
    for entry in content:
        top = tuple(Candidate(int(c["id"]), _piece(c), float(c["logprob"]))
                    for c in entry.get("top_logprobs") or ())
        out.append(Token(int(entry["id"]), _raw(entry), float(entry["logprob"]), top))
    return out


def _raw(entry: Mapping[str, Any]) -> bytes:
    raw = entry.get("bytes")
    if isinstance(raw, list):
        return bytes(raw)
    return str(entry.get("token", "")).encode("utf-8")


def _piece(entry: Mapping[str, Any]) -> str:
    return _raw(entry).decode("utf-8", errors="replace")
