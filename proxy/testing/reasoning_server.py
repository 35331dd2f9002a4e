"""A scripted, OpenAI-compatible reasoning model server (a real HTTP server on loopback).

Speaks the real wire formats: ``POST /v1/chat/completions`` (JSON or SSE chunks with
``delta.reasoning_content`` / ``delta.reasoning`` / inline ``<think>`` tags, usage with
``completion_tokens_details.reasoning_tokens``, chat logprobs) and ``POST /v1/completions``
(raw text, completions logprobs). Each request is classified by what it carries:

- no reasoning from the script in the prompt: a *main* call (the model thinks, answers);
- some reasoning and ``max_tokens <= PROBE_LIMIT``: a *probe* (answer from that much);
- some reasoning and a larger or no limit: a *continuation* (the final answer).

Main streams and continuations stop at the request's ``max_tokens`` /
``max_completion_tokens`` (``finish_reason: "length"``), as a real server does.

When the request offers tools and the script has ``tool_calls``, the model's answer is
those calls, in the OpenAI wire format (streamed: ``delta.tool_calls`` pieces with index,
id, type, function name, then the arguments in pieces; whole: ``message.tool_calls``;
``finish_reason: "tool_calls"``), unless ``tool_choice`` is ``"none"`` or a tool result is
already in the conversation. Asked for logprobs (chat ``logprobs``/``top_logprobs``,
completions ``logprobs: k``), every streamed token carries them, reasoning included, as a
server without a reasoning parser sends them.

``server.stats`` records what happened, including how many reasoning tokens a main stream
sent and whether the client closed it early, so tests can check cancellation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from thinkstop.proxy.testing.script import Script
from thinkstop.proxy.testing.server_thread import ServerThread
from thinkstop.proxy.testing.wire import (
    Reply,
    Send,
    probe_logprobs,
    send_error,
    send_json,
    split_text,
    usage_body,
)

PROBE_LIMIT = 64
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]


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
    reasoning_tokens_sent: int = 0  # by every main call together
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
    tool_calls_sent: list[tuple[str, str, str]] = field(default_factory=list)  # kind, name, args
    # The client ports requests came from: one per TCP connection, so a client that
    # reuses its connections shows fewer ports than requests.
    client_ports: set[int] = field(default_factory=set)

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


def _offers_tools(script: Script, body: dict[str, Any]) -> bool:
    """Whether the scripted model answers this request with its tool calls."""
    if not script.tool_calls or not body.get("tools") or body.get("tool_choice") == "none":
        return False
    return not any(m.get("role") == "tool" for m in body.get("messages") or ())


def _limit(body: dict[str, Any]) -> int | None:
    """The request's cap on generated tokens, which the model stops at (``length``)."""
    caps = [v for k in ("max_tokens", "max_completion_tokens")
            if isinstance(v := body.get(k), int) and not isinstance(v, bool)]
    return min(caps) if caps else None


def _logprobs_asked(chat: bool, body: dict[str, Any]) -> int | None:
    """How many alternatives per token the request asks for; None: no logprobs."""
    value = body.get("logprobs")
    if chat:
        return int(body.get("top_logprobs") or 0) if value is True else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
        if scope.get("client"):
            stats.client_ports.add(int(scope["client"][1]))
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
            await send_json(send, 200, {"object": "list",
                                        "data": [{"id": "fake", "object": "model"}]})
            return
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            await send_error(send, 401, "bad api key")
            return
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except json.JSONDecodeError:
            await send_error(send, 400, "bad json")
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            await send_error(send, 404, f"no route {path}")
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
        asked = _logprobs_asked(chat, body) if kind != "probe" else None
        reply = Reply(chat=chat, model=str(body.get("model")), send=send,
                       logprobs=asked, logprob=script.answer_logprob)
        reply.linger_after_done = script.linger_after_done
        echo = f" (sent: {auth})" if script.echo_auth_on_error else ""
        if kind == "main":
            if script.fail_main is not None and (
                script.fail_main_times is None or self.stats.main_failures < script.fail_main_times
            ):
                self.stats.main_failures += 1
                await send_error(send, script.fail_main, "scripted main failure" + echo)
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
                await send_error(send, 500, "scripted continuation failure" + echo)
                return
            if chat and _offers_tools(script, body):
                await self._call_tools(script, body, haystack, n, reply, "continuation")
                return
            text = script.final_text_at(n)
            pieces = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
            limit = _limit(body)
            finish = "length" if limit is not None and limit < len(pieces) else "stop"
            pieces = pieces[:limit]
            usage = usage_body(_prompt_tokens(haystack), len(pieces), 0)
            if body.get("stream"):
                await reply.start_stream()
                for piece in pieces:
                    if script.continuation_delay and await _left_within(
                            receive, script.continuation_delay):
                        self.stats.continuations_closed_early += 1
                        return
                    await reply.chunk(content=piece)
                await reply.finish(finish, usage if _wants_usage(body) else None)
            else:
                await reply.whole("".join(pieces), None, usage, finish_reason=finish)

    async def _call_tools(self, script: Script, body: dict[str, Any], haystack: str,
                          tokens: int, reply: Reply, kind: str, *,
                          reasoning: str | None = None, started: bool = False) -> None:
        """Answer with the script's tool calls (after ``tokens`` of reasoning)."""
        calls = script.tool_calls_at(tokens)
        self.stats.tool_calls_sent.extend((kind, name, args) for name, args in calls)
        reasoning_tokens = tokens if kind == "main" else 0
        pieces = [split_text(args) for _, args in calls]
        usage = usage_body(_prompt_tokens(haystack), reasoning_tokens + sum(map(len, pieces)),
                           reasoning_tokens)
        if not body.get("stream"):
            await reply.whole(None, reasoning, usage, tool_calls=calls,
                              finish_reason="tool_calls")
            return
        if not started:
            await reply.start_stream()
        for index, ((name, _), parts) in enumerate(zip(calls, pieces, strict=True)):
            call_id = f"call_{uuid.uuid4().hex[:12]}"
            await reply.tool_piece(index, call_id=call_id, name=name)
            for part in parts:
                await reply.tool_piece(index, arguments=part)
        await reply.finish("tool_calls", usage if _wants_usage(body) else None)

    async def _main(self, script: Script, body: dict[str, Any], haystack: str,
                    reply: Reply, receive: Receive) -> None:
        self.stats.main_streams += 1
        self.stats.sent_reasoning_tokens = 0
        n_reason, n_answer = len(script.reasoning), len(script.answer)
        usage = usage_body(_prompt_tokens(haystack),
                           n_reason + n_answer + (0 if reply.chat else 1),
                           n_reason if reply.chat else 0)
        tools = reply.chat and _offers_tools(script, body)
        if not body.get("stream"):
            await asyncio.sleep(script.token_delay * (n_reason + n_answer))
            self.stats.sent_reasoning_tokens = n_reason
            self.stats.streams_completed += 1
            reasoning = None if script.hide_reasoning else script.text
            if tools:
                await self._call_tools(script, body, haystack, n_reason, reply, "main",
                                       reasoning=reasoning)
                return
            answer = "".join(script.answer)
            if not reply.chat:
                answer = f"{script.text}\n</think>\n\n{answer}"
            await reply.whole(answer, reasoning, usage)
            return
        disconnected = asyncio.Event()
        listener = asyncio.ensure_future(_listen(receive, disconnected))
        limit = _limit(body)
        try:
            if script.headers_only:  # a hung server: the 200 and no byte of a chunk
                await reply.send({"type": "http.response.start", "status": 200,
                                  "headers": [(b"content-type", b"text/event-stream")]})
                await disconnected.wait()
                self.stats.streams_closed_early += 1
                return
            await reply.start_stream()
            pacer = _Pacer(script.token_delay)
            for i, token in enumerate(script.reasoning):
                if limit is not None and i >= limit:  # max_tokens spent on thinking
                    cut = usage_body(_prompt_tokens(haystack), i, i if reply.chat else 0)
                    await reply.finish("length", cut if _wants_usage(body) else None)
                    self.stats.streams_completed += 1
                    return
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
                if script.big_reasoning is not None and i == script.big_reasoning[0]:
                    token = script.big_reasoning[1]
                if not script.hide_reasoning:
                    await self._reasoning_chunk(script, reply, i, token)
                self.stats.sent_reasoning_tokens = i + 1
                self.stats.reasoning_tokens_sent += 1
            if not reply.chat:
                await reply.chunk(content="\n</think>\n\n")
            elif script.reasoning_field == "think_tags" and not script.hide_reasoning:
                await reply.chunk(content="\n</thi")
                await reply.chunk(content="nk>\n\n")
            if tools:
                await self._call_tools(script, body, haystack, n_reason, reply, "main",
                                       started=True)
                self.stats.streams_completed += 1
                return
            for j, token in enumerate(script.answer):
                if script.drop_in_answer_after is not None and j >= script.drop_in_answer_after:
                    raise _Drop()
                if limit is not None and n_reason + j >= limit:
                    cut = usage_body(_prompt_tokens(haystack), limit, n_reason)
                    await reply.finish("length", cut if _wants_usage(body) else None)
                    self.stats.streams_completed += 1
                    return
                await pacer.tick()
                if disconnected.is_set():
                    self.stats.streams_closed_early += 1
                    self.stats.closed.set()
                    return
                if script.big_answer is not None and j == script.big_answer[0]:
                    token = script.big_answer[1]
                await reply.chunk(content=token)
            await reply.finish("stop", usage if _wants_usage(body) else None)
            self.stats.streams_completed += 1
        finally:
            listener.cancel()

    @staticmethod
    async def _reasoning_chunk(script: Script, reply: Reply, i: int, token: str) -> None:
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
                     reply: Reply, receive: Receive) -> None:
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
            await send_error(reply.send, script.fail_probes, "scripted probe failure")
            return
        answer = script.probe_answer_at(n)
        prefilled = haystack.rstrip().endswith("<answer>")
        pieces = [answer, "</answer>"] if prefilled else ["<answer>", answer, "</answer>"]
        text = _apply_stop("".join(pieces), body.get("stop"))
        emitted = [p for p in pieces if p in text] or [""]
        usage = usage_body(_prompt_tokens(haystack), len(emitted), 0)
        self.stats.probe_completion_tokens += usage["completion_tokens"]
        self.stats.probe_prompt_tokens += usage["prompt_tokens"]
        logprobs = None
        if script.probe_logprob is not None and (body.get("logprobs") or body.get("top_logprobs")):
            logprobs = probe_logprobs(reply.chat, emitted, answer, script.probe_logprob)
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
