"""The fake reasoning server's wire formats: chat and completions replies, whole or as
SSE chunks, with usage, logprobs and tool-call pieces as OpenAI-compatible servers send
them."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]


ALTERNATIVES = (" maybe", " perhaps", " so", " then", " and")


def token_logprobs(chat: bool, token: str, logprob: float, top: int) -> dict[str, Any]:
    """One streamed token's logprobs in the chat or the completions shape."""
    alternatives = [(a, logprob - 2.0 - i) for i, a in enumerate(ALTERNATIVES) if a != token]
    tops = [(token, logprob), *alternatives][:top]
    if chat:
        return {"content": [{"token": token, "logprob": logprob,
                             "bytes": list(token.encode()),
                             "top_logprobs": [{"token": t, "logprob": lp,
                                               "bytes": list(t.encode())} for t, lp in tops]}],
                "refusal": None}
    return {"tokens": [token], "token_logprobs": [logprob], "top_logprobs": [dict(tops)],
            "text_offset": [0]}


def split_text(text: str, parts: int = 3) -> list[str]:
    """``text`` in up to ``parts`` pieces, as a server streams a call's arguments."""
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def usage_body(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def probe_logprobs(chat: bool, pieces: list[str], answer: str, logprob: float) -> dict[str, Any]:
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


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, message: str) -> None:
    await send_json(send, status, {"error": {"message": message, "type": "fake_error",
                                         "code": str(status)}})


class Reply:
    """Writes chat or completions replies, whole or as SSE chunks."""

    def __init__(self, *, chat: bool, model: str, send: Send, logprobs: int | None = None,
                 logprob: float = -0.25) -> None:
        self.chat = chat
        self.model = model
        self.send = send
        self.logprobs = logprobs  # alternatives per token when asked for, else None
        self.logprob = logprob
        self.id = f"fake-{uuid.uuid4().hex[:12]}"
        self.created = int(time.time())
        self._first = True
        # Seconds to keep the body open after ``[DONE]``, sending comment lines: a server
        # that never ends its finished stream (the client must not wait on it).
        self.linger_after_done = 0.0

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
        token = next(iter(delta.values()), "")
        logprobs = None if self.logprobs is None else token_logprobs(
            self.chat, token, self.logprob, self.logprobs)
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": logprobs,
                                      "finish_reason": None}
        else:
            choice = {"index": 0, "text": delta.get("content", ""), "logprobs": logprobs,
                      "finish_reason": None}
        await self._event(self._envelope([choice]))

    async def tool_piece(self, index: int, *, call_id: str | None = None,
                         name: str | None = None, arguments: str = "") -> None:
        """One ``delta.tool_calls`` piece: the first of a call names it, the rest carry
        its arguments."""
        piece: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if call_id is not None:
            piece.update(id=call_id, type="function")
            piece["function"]["name"] = name
        await self._event(self._envelope([{"index": 0, "delta": {"tool_calls": [piece]},
                                           "finish_reason": None}]))

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
        deadline = time.monotonic() + self.linger_after_done
        while time.monotonic() < deadline:
            await self.send({"type": "http.response.body", "body": b": still here\n\n",
                             "more_body": True})
            await asyncio.sleep(0.02)
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def whole(self, text: str | None, reasoning: str | None, usage: dict[str, Any],
                    *, logprobs: dict[str, Any] | None = None,
                    tool_calls: list[tuple[str, str]] | None = None,
                    finish_reason: str = "stop") -> None:
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            if tool_calls:
                message["tool_calls"] = [
                    {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                     "function": {"name": name, "arguments": args}}
                    for name, args in tool_calls]
            choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": logprobs,
                                      "finish_reason": finish_reason}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": logprobs,
                      "finish_reason": finish_reason}
            obj = "text_completion"
        await send_json(self.send, 200, {"id": self.id, "object": obj, "created": self.created,
                                     "model": self.model, "choices": [choice], "usage": usage})
