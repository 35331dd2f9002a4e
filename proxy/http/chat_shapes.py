"""OpenAI chat response shapes: ``chat.completion.chunk`` events and ``chat.completion``
bodies, for one choice or ``n``.

Reasoning travels as ``delta.reasoning_content`` (``message.reasoning_content``); tool
calls as ``delta.tool_calls`` pieces (index, then id, type and function name on a call's
first piece, arguments in pieces), or ``message.tool_calls`` whole; the answer tokens'
logprobs, when asked for, as ``choices[].logprobs.content``. The ``thinkstop`` decision
is a top-level field: in the last chunk before ``[DONE]`` when streaming (the usage chunk
when one was asked for), in the body otherwise.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from thinkstop.proxy.engine.run import Delta
from thinkstop.proxy.http.answer import Answer, ToolCallIds


def logprobs_field(entries: tuple[dict[str, Any], ...] | list[dict[str, Any]] | None
                   ) -> dict[str, Any] | None:
    """A choice's ``logprobs`` (None when there are none: not asked for, or not sent)."""
    return {"content": list(entries), "refusal": None} if entries else None


class ChunkBuilder:
    """Builds the chunks of one streamed completion (same id and timestamp throughout)."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self._role_sent: set[int] = set()
        self._ids: dict[int, ToolCallIds] = {}

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices}

    def _with_role(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        if index in self._role_sent:
            return delta
        self._role_sent.add(index)
        return {"role": "assistant", **delta}

    def delta(self, index: int, item: Delta) -> dict[str, Any]:
        delta: dict[str, Any]
        if item.kind == "tool_call" and item.tool_call is not None:
            delta = {"tool_calls": [self._tool_piece(index, item)]}
        elif item.kind == "reasoning":
            delta = {"reasoning_content": item.text}
        else:
            delta = {"content": item.text}
        return self._chunk([{"index": index, "delta": self._with_role(index, delta),
                             "logprobs": logprobs_field(item.logprobs),
                             "finish_reason": None}])

    def _tool_piece(self, index: int, item: Delta) -> dict[str, Any]:
        call = item.tool_call
        assert call is not None
        ids = self._ids.setdefault(index, ToolCallIds())
        piece: dict[str, Any] = {"index": call.index}
        function: dict[str, Any] = {"arguments": call.arguments}
        if ids.first_piece(call):
            piece.update(id=ids.of(call), type="function")
            function = {"name": call.name or "", **function}
        elif call.name:
            function["name"] = call.name
        piece["function"] = function
        return piece

    def finish(self, index: int, finish_reason: str,
               decision: dict[str, Any] | None) -> dict[str, Any]:
        delta = {} if index in self._role_sent else self._with_role(index, {"content": ""})
        chunk = self._chunk([{"index": index, "delta": delta, "logprobs": None,
                              "finish_reason": finish_reason}])
        return with_decision(chunk, decision) if decision is not None else chunk

    def usage(self, usage: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        chunk = self._chunk([])
        chunk["usage"] = usage
        return with_decision(chunk, decision)


def with_decision(chunk: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """The last chunk, carrying the decision: top-level ``thinkstop`` (the openai SDK keeps
    unknown fields), and again under ``provider_specific_fields``, the one place of a
    streamed chunk that litellm as a client copies onto its own chunk objects (it drops
    other unknown top-level fields of a stream)."""
    return {**chunk, "thinkstop": decision,
            "provider_specific_fields": {"thinkstop": decision}}


def assistant_message(answer: Answer, *, show_reasoning: bool) -> dict[str, Any]:
    """A whole reply's ``message``: text (null when the model only called tools), the
    refusal field the spec requires, tool calls, and the reasoning when shown."""
    calls = answer.tool_calls()
    content = answer.content
    message: dict[str, Any] = {"role": "assistant",
                               "content": None if calls and not content else content,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if show_reasoning:
        message["reasoning_content"] = answer.reasoning
    return message


def completion_body(model: str, choices: list[tuple[Answer, str]], *, show_reasoning: bool,
                    usage: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """A whole ``chat.completion``; ``choices``: each run's answer and finish reason."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, "message": assistant_message(answer,
                                                              show_reasoning=show_reasoning),
                     "logprobs": logprobs_field(answer.logprobs), "finish_reason": finish}
                    for i, (answer, finish) in enumerate(choices)],
        "usage": usage,
        "thinkstop": decision,
    }
