"""The Responses API's output: items built from one run's deltas, the stream's events,
and the ``response`` object.

Output items, in the order the model produced them: a ``reasoning`` item (its text as a
``reasoning_text`` content part; left out when reasoning is hidden), a ``message`` with
one ``output_text`` part, or ``function_call`` items (one per tool call). Streamed, each
item is opened (``response.output_item.added``, ``response.content_part.added``), grows
(``response.reasoning_text.delta``, ``response.output_text.delta``,
``response.function_call_arguments.delta``) and is closed (the ``.done`` events), between
``response.created`` / ``response.in_progress`` and ``response.completed`` (or
``response.incomplete`` when the output hit ``max_output_tokens``). Every event carries a
``sequence_number``. The response object has a top-level ``thinkstop`` decision.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from thinkstop.proxy.engine.run import Delta
from thinkstop.proxy.http.answer import ToolCallIds
from thinkstop.proxy.http.responses_request import ResponsesRequest

Event = tuple[str, dict[str, Any]]  # (type, payload)
ItemKind = Literal["reasoning", "message", "function_call"]
Status = Literal["in_progress", "completed", "incomplete", "failed"]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def response_logprobs(entries: tuple[dict[str, Any], ...] | None) -> list[dict[str, Any]]:
    """Chat token entries as Responses ``logprobs`` (every entry with its bytes)."""
    out = []
    for entry in entries or ():
        token = str(entry.get("token", ""))
        tops = [{"token": str(t.get("token", "")), "logprob": float(t.get("logprob", 0.0)),
                 "bytes": t.get("bytes") or list(str(t.get("token", "")).encode())}
                for t in entry.get("top_logprobs") or () if isinstance(t, dict)]
        out.append({"token": token, "logprob": float(entry.get("logprob", 0.0)),
                    "bytes": entry.get("bytes") or list(token.encode()), "top_logprobs": tops})
    return out


@dataclass
class _Item:
    kind: ItemKind
    id: str
    index: int
    text: str = ""
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    done: bool = False

    def body(self) -> dict[str, Any]:
        status = "completed" if self.done else "in_progress"
        if self.kind == "reasoning":
            content = [{"type": "reasoning_text", "text": self.text}] if self.done else []
            return {"id": self.id, "type": "reasoning", "summary": [], "content": content,
                    "status": status}
        if self.kind == "message":
            parts = [self.part()] if self.done else []
            return {"id": self.id, "type": "message", "role": "assistant", "status": status,
                    "content": parts}
        return {"id": self.id, "type": "function_call", "call_id": self.call_id,
                "name": self.name, "arguments": self.text, "status": status}

    def part(self) -> dict[str, Any]:
        if self.kind == "reasoning":
            return {"type": "reasoning_text", "text": self.text}
        return {"type": "output_text", "text": self.text, "annotations": [],
                "logprobs": self.logprobs}


class ResponseWriter:
    """One response's output items and events, built from its run's deltas."""

    def __init__(self, request: ResponsesRequest, *, show_reasoning: bool) -> None:
        self.request = request
        self.id = _id("resp")
        self.created_at = int(time.time())
        self.show_reasoning = show_reasoning
        self.items: list[_Item] = []
        self._calls: dict[int, _Item] = {}
        self._ids = ToolCallIds()
        self._seq = 0

    # -- events ------------------------------------------------------------------------
    def _event(self, kind: str, **payload: Any) -> Event:
        event = (kind, {"type": kind, "sequence_number": self._seq, **payload})
        self._seq += 1
        return event

    def opening(self) -> list[Event]:
        snapshot = self.response("in_progress")
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def add(self, delta: Delta) -> list[Event]:
        """The events for one delta (none for hidden reasoning)."""
        if delta.kind == "reasoning":
            if not self.show_reasoning or not delta.text:
                return []
            item, events = self._current("reasoning")
            item.text += delta.text
            return [*events, self._event("response.reasoning_text.delta", item_id=item.id,
                                         output_index=item.index, content_index=0,
                                         delta=delta.text)]
        if delta.kind == "content":
            if not delta.text and not delta.logprobs:
                return []
            item, events = self._current("message")
            item.text += delta.text
            logprobs = response_logprobs(delta.logprobs)
            item.logprobs.extend(logprobs)
            return [*events, self._event("response.output_text.delta", item_id=item.id,
                                         output_index=item.index, content_index=0,
                                         delta=delta.text, logprobs=logprobs)]
        call = delta.tool_call
        assert call is not None
        out: list[Event] = []
        found = self._calls.get(call.index)
        if found is None:
            out = self._close_open()
            item = self._open("function_call")
            item.call_id = self._ids.of(call)
            item.name = call.name or ""
            self._calls[call.index] = item
            out.append(self._event("response.output_item.added", output_index=item.index,
                                   item=item.body()))
        else:
            item = found
            item.name += call.name or ""
        if not call.arguments:
            return out
        item.text += call.arguments
        return [*out, self._event("response.function_call_arguments.delta",
                                  item_id=item.id, output_index=item.index,
                                  delta=call.arguments)]

    def closing(self, status: Status, usage: dict[str, Any],
                decision: dict[str, Any]) -> list[Event]:
        """Close every open item, then the final event with the whole response."""
        events = self._close_open()
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return [*events, self._event(kind, response=self.response(status, usage, decision))]

    def failing(self, error: dict[str, Any], usage: dict[str, Any],
                decision: dict[str, Any]) -> list[Event]:
        """An in-band failure: the ``error`` event, then ``response.failed``."""
        body = error.get("error", {})
        failed = self.response("failed", usage, decision)
        failed["error"] = {"code": "server_error", "message": str(body.get("message", ""))}
        return [self._event("error", code=body.get("code"), message=str(body.get("message")),
                            param=body.get("param")),
                self._event("response.failed", response=failed)]

    # -- items -------------------------------------------------------------------------
    def _open(self, kind: ItemKind) -> _Item:
        item = _Item(kind, _id({"reasoning": "rs", "message": "msg"}.get(kind, "fc")),
                     len(self.items))
        self.items.append(item)
        return item

    def _current(self, kind: ItemKind) -> tuple[_Item, list[Event]]:
        last = self.items[-1] if self.items else None
        if last is not None and last.kind == kind and not last.done:
            return last, []
        events = self._close_open()
        item = self._open(kind)
        events.append(self._event("response.output_item.added", output_index=item.index,
                                  item=item.body()))
        events.append(self._event("response.content_part.added", item_id=item.id,
                                  output_index=item.index, content_index=0,
                                  part={**item.part(), "text": ""}))
        return item, events

    def _close_open(self) -> list[Event]:
        events: list[Event] = []
        for item in self.items:
            if item.done:
                continue
            item.done = True
            where = {"item_id": item.id, "output_index": item.index}
            if item.kind == "reasoning":
                events.append(self._event("response.reasoning_text.done", **where,
                                          content_index=0, text=item.text))
            elif item.kind == "message":
                events.append(self._event("response.output_text.done", **where,
                                          content_index=0, text=item.text,
                                          logprobs=item.logprobs))
            else:
                events.append(self._event("response.function_call_arguments.done", **where,
                                          name=item.name, arguments=item.text))
            if item.kind != "function_call":
                events.append(self._event("response.content_part.done", **where,
                                          content_index=0, part=item.part()))
            events.append(self._event("response.output_item.done",
                                      output_index=item.index, item=item.body()))
        return events

    # -- the response object -------------------------------------------------------------
    def response(self, status: Status, usage: dict[str, Any] | None = None,
                 decision: dict[str, Any] | None = None) -> dict[str, Any]:
        request = self.request
        tools = [{"type": "function", "name": t.get("name"),
                  "description": t.get("description"), "parameters": t.get("parameters"),
                  "strict": t.get("strict")} for t in request.tools or ()]
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None,
            "incomplete_details": ({"reason": "max_output_tokens"}
                                   if status == "incomplete" else None),
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": request.model,
            "output": [item.body() for item in self.items],
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": request.previous_response_id,
            "reasoning": ({"effort": request.reasoning.effort, "summary": None}
                          if request.reasoning else None),
            "store": request.store is not False,
            "temperature": request.temperature,
            "text": request.text or {"format": {"type": "text"}},
            "tool_choice": request.tool_choice or "auto",
            "tools": tools,
            "top_p": request.top_p,
            "truncation": request.truncation or "disabled",
            "metadata": request.metadata or {},
        }
        if usage is not None:  # optional fields: absent, not null, until known
            body["usage"] = responses_usage(usage)
        if request.user is not None:
            body["user"] = request.user
        if decision is not None:
            body["thinkstop"] = decision
        return body


def responses_usage(chat: dict[str, Any]) -> dict[str, Any]:
    """Chat-shaped usage in the Responses API's names."""
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": chat.get("prompt_tokens_details", {}).get("cached_tokens", 0),
            "cache_write_tokens": 0},  # not reported by chat upstreams
        "output_tokens": chat["completion_tokens"],
        "output_tokens_details": {
            "reasoning_tokens": chat["completion_tokens_details"]["reasoning_tokens"]},
        "total_tokens": chat["total_tokens"],
    }

