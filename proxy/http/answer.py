"""What one run gave the client, and what the client is told about all of a request's
runs.

:class:`Answer` gathers a run's deltas (reasoning, answer text, tool-call pieces, the
answer's token logprobs) for the replies that are not streamed and for the Responses
store. :class:`ToolCallIds` gives every tool call an id, as OpenAI's do, where the
upstream sent none. :func:`decision_of` and :func:`total_usage` describe one choice's run
or, for ``n > 1``, all of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from thinkstop.proxy.engine.accounting import RunResult, usage_dict
from thinkstop.proxy.engine.run import Delta
from thinkstop.proxy.upstreams.base import ToolCallDelta, Usage


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallIds:
    """The id of each tool call of one choice: the upstream's own, or a new one."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}

    def first_piece(self, call: ToolCallDelta) -> bool:
        return call.index not in self._ids

    def of(self, call: ToolCallDelta) -> str:
        if call.index not in self._ids:
            self._ids[call.index] = call.id or new_call_id()
        return self._ids[call.index]


@dataclass
class CallSoFar:
    id: str
    name: str = ""
    arguments: str = ""


@dataclass
class Answer:
    """One run's output, gathered from its deltas."""

    reasoning_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)
    calls: dict[int, CallSoFar] = field(default_factory=dict)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    ids: ToolCallIds = field(default_factory=ToolCallIds)

    def add(self, delta: Delta) -> None:
        if delta.kind == "reasoning":
            self.reasoning_parts.append(delta.text)
        elif delta.kind == "content":
            self.content_parts.append(delta.text)
            self.logprobs.extend(delta.logprobs or ())
        elif delta.tool_call is not None:
            call = delta.tool_call
            so_far = self.calls.setdefault(call.index, CallSoFar(self.ids.of(call)))
            so_far.name += call.name or ""
            so_far.arguments += call.arguments

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    def tool_calls(self) -> list[dict[str, Any]]:
        """The calls in the chat ``message.tool_calls`` shape, by index."""
        return [{"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for _, c in sorted(self.calls.items())]

    def message(self) -> dict[str, Any]:
        """This answer as the assistant message of a later turn (Responses store)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.calls:
            message["tool_calls"] = self.tool_calls()
        return message


def total_usage(results: list[RunResult]) -> dict[str, Any]:
    """Every run's usage summed, in the chat shape."""
    total = Usage()
    for result in results:
        total = total + result.usage()
    return usage_dict(total)


def decision_of(results: list[RunResult]) -> dict[str, Any]:
    """The top-level ``thinkstop`` object: one run's decision, or for ``n > 1`` each
    choice's under ``choices`` (``halted``: whether any choice halted)."""
    if len(results) == 1:
        return results[0].decision()
    return {"n": len(results), "halted": any(r.halted for r in results),
            "choices": [{"index": i, **r.decision()} for i, r in enumerate(results)]}
