"""OpenAI response shapes: ``chat.completion.chunk`` events and ``chat.completion`` bodies.

The ``thinkstop`` decision is a top-level field: in the last chunk before ``[DONE]`` when
streaming (the usage chunk when one was asked for), in the body otherwise.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from thinkstop.proxy.engine.accounting import RunResult


class ChunkBuilder:
    """Builds the chunks of one streamed completion (same id and timestamp throughout)."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self._role_sent = False

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices}

    def delta(self, kind: str, text: str) -> dict[str, Any]:
        delta: dict[str, Any] = {"reasoning_content" if kind == "reasoning" else "content": text}
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": None}])

    def finish(self, result: RunResult, *, last: bool) -> dict[str, Any]:
        delta: dict[str, Any] = {} if self._role_sent else {"role": "assistant", "content": ""}
        chunk = self._chunk([{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": result.finish_reason}])
        if last:
            chunk["thinkstop"] = result.decision()
        return chunk

    def usage(self, result: RunResult) -> dict[str, Any]:
        chunk = self._chunk([])
        chunk["usage"] = result.usage_dict()
        chunk["thinkstop"] = result.decision()
        return chunk


def completion_body(model: str, reasoning: str | None, content: str,
                    result: RunResult) -> dict[str, Any]:
    """A whole ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": result.finish_reason}],
        "usage": result.usage_dict(),
        "thinkstop": result.decision(),
    }
