"""A scripted, OpenAI-compatible reasoning model server (a real HTTP server on loopback).

Speaks the real wire formats: ``POST /v1/chat/completions`` (JSON or SSE chunks with
``delta.reasoning_content`` / ``delta.reasoning`` / inline ``<think>`` tags, usage with
``completion_tokens_details.reasoning_tokens``, chat logprobs) and ``POST /v1/completions``
(raw text, completions logprobs). Each request is classified by what it carries:

- no reasoning from the script in the prompt: a *main* call (the model thinks, answers);
- some reasoning and ``max_tokens <= PROBE_LIMIT``: a *probe* (answer from that much);
- some reasoning and a larger or no limit: a *continuation* (the final answer).

``server.stats`` records what happened, including how many reasoning tokens a main stream
sent and whether the client closed it early, so tests can check cancellation.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from thinkstop.proxy.testing.script import Script
from thinkstop.proxy.testing.server_thread import ServerThread

PROBE_LIMIT = 64
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class RequestRecord:
    kind: str  # main | probe | continuation
    path: str
    model: str
    reasoning_tokens: int  # script reasoning tokens found in the prompt
    body: dict[str, Any]


@dataclass
class FakeStats:
    """Counters (written by the server thread; read them after waiting, or via ``wait``)."""

    requests: list[RequestRecord] = field(default_factory=list)
    main_streams: int = 0
    streams_completed: int = 0
    streams_closed_early: int = 0
    sent_reasoning_tokens: int = 0  # by the latest main call
    probe_requests: int = 0
    probe_completion_tokens: int = 0
    probe_prompt_tokens: int = 0
    probes_cancelled: int = 0
    continuation_requests: int = 0
    closed: threading.Event = field(default_factory=threading.Event)
    open_requests: int = 0  # HTTP requests being answered right now
    main_failures: int = 0
    closed_before_reply: int = 0  # main calls the client left while we were silent
    continuation_failures: int = 0
    continuations_closed_early: int = 0

    def of_kind(self, kind: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.kind == kind]


def _prompt_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _haystack(body: dict[str, Any]) -> str:
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    parts: list[str] = []
    for message in body.get("messages") or []:
        for key in ("content", "reasoning_content", "reasoning"):
            value = message.get(key)
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, list):  # content parts
                parts.extend(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return "\n".join(parts)


def _apply_stop(text: str, stop: Any) -> str:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = len(text)
    for s in stops:
        idx = text.find(s)
        if idx >= 0:
            cut = min(cut, idx)
    return text[:cut]


class FakeReasoningServer:
    """``with FakeReasoningServer(script) as fake: fake.base_url`` (ends in ``/v1``).

    ``scripts`` maps a request's ``model`` field to its script; others use ``script``.
    """

    def __init__(self, script: Script | None = None, *, api_key: str | None = None) -> None:
        self.script = script or Script()
        self.scripts: dict[str, Script] = {}
        self.api_key = api_key
        self.stats = FakeStats()
        self._server = ServerThread(self.app)

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self._server.url}/v1"

    def start(self) -> FakeReasoningServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeReasoningServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self, script: Script | None = None) -> None:
        """Fresh counters and, optionally, a new default script; per-model scripts cleared."""
        self.stats = FakeStats()
        self.scripts = {}
        if script is not None:
            self.script = script

    def wait(self, predicate: Callable[[FakeStats], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.stats):
                return True
            time.sleep(0.005)
        return predicate(self.stats)

    # -- ASGI --------------------------------------------------------------------------
    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        stats = self.stats
        stats.open_requests += 1
        try:
            await self._answer(scope, receive, send)
        finally:
            stats.open_requests -= 1

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path = scope["path"]
        if scope["method"] == "GET" and path == "/v1/models":
            await _json(send, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            return
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            await _error(send, 401, "bad api key")
            return
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except json.JSONDecodeError:
            await _error(send, 400, "bad json")
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            await _error(send, 404, f"no route {path}")
            return
        await self._dispatch(path, body, receive, send, auth)

    async def _dispatch(self, path: str, body: dict[str, Any], receive: Receive,
                        send: Send, auth: str = "") -> None:
        script = self.scripts.get(str(body.get("model")), self.script)
        haystack = _haystack(body)
        n = script.tokens_in(haystack)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if n == 0:
            kind = "main"
        elif isinstance(limit, int) and limit <= PROBE_LIMIT:
            kind = "probe"
        else:
            kind = "continuation"
        self.stats.requests.append(RequestRecord(kind, path, str(body.get("model")), n, body))
        chat = path.endswith("chat/completions")
        reply = _Reply(chat=chat, model=str(body.get("model")), send=send)
        echo = f" (sent: {auth})" if script.echo_auth_on_error else ""
        if kind == "main":
            if script.fail_main is not None and (
                script.fail_main_times is None or self.stats.main_failures < script.fail_main_times
            ):
                self.stats.main_failures += 1
                await _error(send, script.fail_main, "scripted main failure" + echo)
                return
            if script.main_delay and await _left_within(receive, script.main_delay):
                self.stats.closed_before_reply += 1
                return
            await self._main(script, body, haystack, reply, receive)
        elif kind == "probe":
            await self._probe(script, body, haystack, n, reply, receive)
        else:
            self.stats.continuation_requests += 1
            if self.stats.continuation_failures < script.fail_continuations:
                self.stats.continuation_failures += 1
                await _error(send, 500, "scripted continuation failure" + echo)
                return
            text = script.final_text_at(n)
            pieces = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
            usage = _usage(_prompt_tokens(haystack), len(pieces), 0)
            if body.get("stream"):
                await reply.start_stream()
                for piece in pieces:
                    if script.continuation_delay and await _left_within(
                            receive, script.continuation_delay):
                        self.stats.continuations_closed_early += 1
                        return
                    await reply.chunk(content=piece)
                await reply.finish("stop", usage if _wants_usage(body) else None)
            else:
                await reply.whole(text, None, usage)

    async def _main(self, script: Script, body: dict[str, Any], haystack: str,
                    reply: _Reply, receive: Receive) -> None:
        self.stats.main_streams += 1
        self.stats.sent_reasoning_tokens = 0
        n_reason, n_answer = len(script.reasoning), len(script.answer)
        usage = _usage(_prompt_tokens(haystack), n_reason + n_answer + (0 if reply.chat else 1),
                       n_reason if reply.chat else 0)
        if not body.get("stream"):
            await asyncio.sleep(script.token_delay * (n_reason + n_answer))
            self.stats.sent_reasoning_tokens = n_reason
            self.stats.streams_completed += 1
            reasoning = None if script.hide_reasoning else script.text
            answer = "".join(script.answer)
            if not reply.chat:
                answer = f"{script.text}\n</think>\n\n{answer}"
            await reply.whole(answer, reasoning, usage)
            return
        disconnected = asyncio.Event()
        listener = asyncio.ensure_future(_listen(receive, disconnected))
        try:
            await reply.start_stream()
            pacer = _Pacer(script.token_delay)
            for i, token in enumerate(script.reasoning):
                if script.drop_after is not None and i >= script.drop_after:
                    raise _Drop()
                if script.stall_after is not None and i >= script.stall_after:
                    await disconnected.wait()  # silent, connection open, until closed
                if script.malformed_after is not None and i == script.malformed_after:
                    await reply._event("{this is not json")
                await pacer.tick()
                if disconnected.is_set():
                    self.stats.streams_closed_early += 1
                    self.stats.closed.set()
                    return
                if not script.hide_reasoning:
                    await self._reasoning_chunk(script, reply, i, token)
                self.stats.sent_reasoning_tokens = i + 1
            if not reply.chat:
                await reply.chunk(content="\n</think>\n\n")
            elif script.reasoning_field == "think_tags" and not script.hide_reasoning:
                await reply.chunk(content="\n</thi")
                await reply.chunk(content="nk>\n\n")
            for j, token in enumerate(script.answer):
                if script.drop_in_answer_after is not None and j >= script.drop_in_answer_after:
                    raise _Drop()
                await pacer.tick()
                if disconnected.is_set():
                    self.stats.streams_closed_early += 1
                    self.stats.closed.set()
                    return
                await reply.chunk(content=token)
            await reply.finish("stop", usage if _wants_usage(body) else None)
            self.stats.streams_completed += 1
        finally:
            listener.cancel()

    @staticmethod
    async def _reasoning_chunk(script: Script, reply: _Reply, i: int, token: str) -> None:
        if not reply.chat:
            await reply.chunk(content=token)
        elif script.reasoning_field != "think_tags":
            await reply.chunk(**{script.reasoning_field: token})
        elif i == 0:  # the opening tag split across two chunks
            await reply.chunk(content="<thi")
            await reply.chunk(content="nk>\n" + token)
        else:
            await reply.chunk(content=token)

    async def _probe(self, script: Script, body: dict[str, Any], haystack: str, n: int,
                     reply: _Reply, receive: Receive) -> None:
        self.stats.probe_requests += 1
        if script.probe_delay:
            disconnected = asyncio.Event()
            listener = asyncio.ensure_future(_listen(receive, disconnected))
            try:
                await asyncio.wait_for(disconnected.wait(), script.probe_delay)
            except TimeoutError:
                pass  # the delay ran out with the client still there: answer now
            finally:
                listener.cancel()
            if disconnected.is_set():
                self.stats.probes_cancelled += 1
                return
        if script.fail_probes is not None:
            await _error(reply.send, script.fail_probes, "scripted probe failure")
            return
        answer = script.probe_answer_at(n)
        prefilled = haystack.rstrip().endswith("<answer>")
        pieces = [answer, "</answer>"] if prefilled else ["<answer>", answer, "</answer>"]
        text = _apply_stop("".join(pieces), body.get("stop"))
        emitted = [p for p in pieces if p in text] or [""]
        usage = _usage(_prompt_tokens(haystack), len(emitted), 0)
        self.stats.probe_completion_tokens += usage["completion_tokens"]
        self.stats.probe_prompt_tokens += usage["prompt_tokens"]
        logprobs = None
        if script.probe_logprob is not None and (body.get("logprobs") or body.get("top_logprobs")):
            logprobs = _logprobs(reply.chat, emitted, answer, script.probe_logprob)
        await reply.whole(text, None, usage, logprobs=logprobs)


class _Drop(Exception):
    """Raised to cut the connection mid-stream (uvicorn closes it)."""


class _Pacer:
    """Sleeps so that tokens leave at ``delay`` seconds apiece on average."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.start = time.perf_counter()
        self.count = 0

    async def tick(self) -> None:
        self.count += 1
        if self.delay <= 0:
            if self.count % 16 == 0:
                await asyncio.sleep(0)  # let the disconnect listener run
            return
        wait = self.start + self.count * self.delay - time.perf_counter()
        await asyncio.sleep(max(0.0, wait))


async def _left_within(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds``; True (at once) if the client disconnects meanwhile."""
    disconnected = asyncio.Event()
    listener = asyncio.ensure_future(_listen(receive, disconnected))
    try:
        await asyncio.wait_for(disconnected.wait(), seconds)
    except TimeoutError:
        return False
    finally:
        listener.cancel()
    return True


async def _listen(receive: Receive, event: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            event.set()
            return


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options") or {}
    return bool(options.get("include_usage"))


def _usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _logprobs(chat: bool, pieces: list[str], answer: str, logprob: float) -> dict[str, Any]:
    other = "0" if answer != "0" else "1"
    alt = max(-50.0, math.log1p(-min(0.999999, math.exp(logprob))))
    lps = [logprob if p == answer else 0.0 for p in pieces]
    if chat:
        content = []
        for piece, lp in zip(pieces, lps, strict=True):
            tops = [{"token": piece, "logprob": lp, "bytes": list(piece.encode())}]
            if piece == answer:
                tops.append({"token": other, "logprob": alt, "bytes": list(other.encode())})
            content.append({"token": piece, "logprob": lp, "bytes": list(piece.encode()),
                            "top_logprobs": tops})
        return {"content": content}
    tops_raw: list[dict[str, float]] = []
    for piece, lp in zip(pieces, lps, strict=True):
        tops_raw.append({piece: lp, other: alt} if piece == answer else {piece: lp})
    offsets = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    return {"tokens": pieces, "token_logprobs": lps, "top_logprobs": tops_raw,
            "text_offset": offsets}


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str) -> None:
    await _json(send, status, {"error": {"message": message, "type": "fake_error",
                                         "code": str(status)}})


class _Reply:
    """Writes chat or completions replies, whole or as SSE chunks."""

    def __init__(self, *, chat: bool, model: str, send: Send) -> None:
        self.chat = chat
        self.model = model
        self.send = send
        self.id = f"fake-{uuid.uuid4().hex[:12]}"
        self.created = int(time.time())
        self._first = True

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "choices": choices}

    async def start_stream(self) -> None:
        await self.send({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", b"text/event-stream")]})
        if self.chat:
            await self._event(self._envelope([{"index": 0, "delta": {"role": "assistant",
                                                                     "content": ""},
                                               "finish_reason": None}]))

    async def _event(self, payload: dict[str, Any] | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        await self.send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(),
                         "more_body": True})

    async def chunk(self, **delta: str) -> None:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        else:
            choice = {"index": 0, "text": delta.get("content", ""), "logprobs": None,
                      "finish_reason": None}
        await self._event(self._envelope([choice]))

    async def finish(self, reason: str, usage: dict[str, Any] | None) -> None:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": {}, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": reason}
        await self._event(self._envelope([choice]))
        if usage is not None:
            payload = self._envelope([])
            payload["usage"] = usage
            await self._event(payload)
        await self._event("[DONE]")
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def whole(self, text: str, reasoning: str | None, usage: dict[str, Any],
                    *, logprobs: dict[str, Any] | None = None) -> None:
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": logprobs,
                                      "finish_reason": "stop"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": "stop"}
            obj = "text_completion"
        await _json(self.send, 200, {"id": self.id, "object": obj, "created": self.created,
                                     "model": self.model, "choices": [choice], "usage": usage})
