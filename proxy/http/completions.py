"""``POST /v1/completions``: text completions, for raw-completion upstreams.

A client that renders its own prompt gets the halting loop when that prompt leaves a
think block open (it ends inside ``<think>...``): the text that follows is reasoning,
probed and halted as in chat, and the model then writes its answer after ``</think>``.
The completion's ``text`` is what the model's raw output would be: the reasoning, the
closing ``</think>``, the answer (without the reasoning when ``stream_reasoning`` is
false). ``n`` choices are ``n`` runs.

Anything else is passed through untouched (``reason: "passthrough"`` says why): a prompt
with no open think block (nothing to monitor), several prompts or token ids, and
``echo``, ``suffix``, ``best_of`` or ``logprobs``, whose output the loop would have to
rebuild. Chat upstreams do not serve this endpoint (400).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Final

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from thinkstop.proxy.config import RequestOptions, ThinkstopOptions
from thinkstop.proxy.engine.run import Delta
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.keys import Caller
from thinkstop.proxy.http.answer import decision_of, total_usage
from thinkstop.proxy.http.exchange import Edge, Exchange, Plan, Receive
from thinkstop.proxy.http.fan_in import Ended, fan_in
from thinkstop.proxy.http.passthrough import passthrough_result
from thinkstop.proxy.http.protocol import (
    MAX_TOKENS_LIMIT,
    StreamOptions,
    reject_lone_surrogates,
)
from thinkstop.proxy.http.sse import DONE, frame
from thinkstop.proxy.upstreams.base import UpstreamError
from thinkstop.proxy.upstreams.parsing import parse_usage
from thinkstop.proxy.upstreams.raw_completion import RawCompletionUpstream, opens_reasoning
from thinkstop.proxy.upstreams.thinking import closing

if TYPE_CHECKING:
    _Options = ThinkstopOptions
else:
    _Options = RequestOptions

OWN_FIELDS: Final = frozenset({"model", "prompt", "n", "stream", "stream_options",
                               "thinkstop"})
# Output the halting loop would have to rebuild: relayed as the upstream writes it.
_RELAYED_FIELDS: Final = ("echo", "suffix", "best_of", "logprobs")


class CompletionRequest(BaseModel):
    """An OpenAI (legacy) text completion request (plus ``thinkstop``)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def check_text(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)

    model: str = Field(min_length=1)
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS_LIMIT)
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    thinkstop: _Options | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def upstream_params(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude=set(OWN_FIELDS))

    def relayed_body(self) -> dict[str, Any]:
        """The request as the client sent it, less thinkstop's own options."""
        return self.model_dump(exclude_none=True, exclude={"thinkstop"})

    def passthrough_reason(self) -> str | None:
        if not isinstance(self.prompt, str):
            return "the prompt is not one string: relayed untouched"
        extra = self.model_extra or {}
        asked = {"echo": bool(extra.get("echo")), "suffix": bool(extra.get("suffix")),
                 "best_of": (extra.get("best_of") or 1) != 1,
                 "logprobs": extra.get("logprobs") is not None}
        for name in _RELAYED_FIELDS:
            if asked[name]:
                return f"{name}: relayed untouched (the halting loop would rebuild the output)"
        if not opens_reasoning(self.prompt):
            return "the prompt opens no think block, so there is no reasoning to monitor"
        return None


class _Text:
    """One choice's completion text: reasoning, then ``</think>``, then the answer."""

    def __init__(self, show_reasoning: bool) -> None:
        self.show_reasoning = show_reasoning
        self.reasoning = ""
        self.closed = False

    def piece(self, delta: Delta) -> str:
        if delta.kind == "reasoning":
            if not self.show_reasoning:
                return ""
            self.reasoning += delta.text
            return delta.text
        if delta.kind != "content":
            return ""
        if self.closed or not self.show_reasoning:
            return delta.text
        self.closed = True
        return closing(self.reasoning) + delta.text


class CompletionsService:
    """The text-completions endpoint's logic."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    async def complete(self, body: CompletionRequest, caller: Caller, receive: Receive,
                       request_id: str) -> Response:
        exchange = self.edge.exchange(model=body.model, stream=body.stream, caller=caller,
                                      request_id=request_id)
        try:
            route, _ = self.edge.route(body.model)
            upstream = route.upstream
            if not isinstance(upstream, RawCompletionUpstream):
                raise ProxyError(400, f"model {body.model!r} is served through a chat API; "
                                 "/v1/completions serves raw-completion models "
                                 "(text-completion-openai/... or raw_completion: true)",
                                 param="model", code="unsupported_model")
            why = body.passthrough_reason()
            plan = await exchange.plan([], {**body.upstream_params(), "prompt": body.prompt},
                                       body.thinkstop)
        except ProxyError as exc:
            await exchange.finish(f"error_{exc.status}", exc.message)
            raise
        except BaseException:
            await exchange.finish("error")
            raise
        if why is not None:
            relay = _Relay(exchange, upstream, body, why, plan)
            return await exchange.respond(receive, relay.open,
                                          stream=relay.stream if body.stream else None,
                                          whole=relay.whole)
        exchange.open_runs(plan, body.n or 1)
        if body.stream:
            return await exchange.respond(receive, exchange.start_runs,
                                          stream=lambda: self._stream(exchange, body, plan))
        return await exchange.respond(receive, exchange.start_runs,
                                      whole=lambda: self._whole(exchange, body, plan))

    async def _whole(self, exchange: Exchange, body: CompletionRequest,
                     plan: Plan) -> Response:
        texts = [_Text(plan.show_reasoning) for _ in exchange.runs]
        parts: list[list[str]] = [[] for _ in exchange.runs]
        async for item in fan_in([run.events() for run in exchange.runs]):
            if not isinstance(item, Ended):
                parts[item.index].append(texts[item.index].piece(item.value))
        await exchange.finish("ok")
        results = exchange.results
        body_out = _envelope(body.model, [
            _choice(i, "".join(p), r.finish_reason) for i, (p, r) in
            enumerate(zip(parts, results, strict=True))])
        body_out["usage"] = total_usage(results)
        body_out["thinkstop"] = decision_of(results)
        return JSONResponse(body_out)

    async def _stream(self, exchange: Exchange, body: CompletionRequest,
                      plan: Plan) -> AsyncGenerator[bytes, None]:
        runs = exchange.runs
        texts = [_Text(plan.show_reasoning) for _ in runs]
        envelope = _envelope(body.model, [])
        status, error = "disconnected", None
        try:
            try:
                ended = 0
                async for item in fan_in([run.events() for run in runs]):
                    if isinstance(item, Ended):
                        ended += 1
                        chunk = {**envelope, "choices": [_choice(
                            item.index, "", runs[item.index].result.finish_reason)]}
                        if ended == len(runs) and not body.include_usage:
                            chunk["thinkstop"] = decision_of(exchange.results)
                        yield frame(chunk)
                        continue
                    text = texts[item.index].piece(item.value)
                    if text:
                        exchange.first_byte()
                        yield frame({**envelope, "choices": [_choice(item.index, text, None)]})
                if body.include_usage:
                    results = exchange.results
                    yield frame({**envelope, "choices": [], "usage": total_usage(results),
                                 "thinkstop": decision_of(results)})
                status = "ok"
            except UpstreamError as exc:
                failure = exchange.upstream_error(exc)
                status, error = "upstream_error", failure.message
                yield frame(failure.body())
            yield DONE
        finally:
            await exchange.finish(status, error)


def _envelope(model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": model, "choices": choices}


def _choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


class _Relay:
    """A completions request passed through untouched (only ``thinkstop`` added)."""

    def __init__(self, exchange: Exchange, upstream: RawCompletionUpstream,
                 body: CompletionRequest, why: str, plan: Plan) -> None:
        self.exchange = exchange
        self.upstream = upstream
        self.body = body
        self.result = passthrough_result(plan.options.policy or "", why)
        exchange.passthrough = self.result
        self._chunks: AsyncGenerator[dict[str, Any], None] | None = None
        self._first: dict[str, Any] | None = None

    def _sent(self) -> dict[str, Any]:
        sent = self.body.relayed_body()
        if self.body.stream:  # the usage chunk counts the tokens; dropped if not asked for
            sent["stream_options"] = {**sent.get("stream_options", {}), "include_usage": True}
        return sent

    async def open(self) -> None:
        if not self.body.stream:
            return
        self._chunks = self.upstream.relay_completion(self._sent())
        try:
            self._first = await anext(self._chunks)
        except StopAsyncIteration:
            self._first = None
        except BaseException:
            await self._chunks.aclose()
            raise

    async def stream(self) -> AsyncGenerator[bytes, None]:
        exchange, chunks = self.exchange, self._chunks
        assert chunks is not None
        status, error = "disconnected", None
        first = self._first
        held = first if first is not None and not self._dropped(first) else None
        try:
            try:
                async for chunk in chunks:
                    if self._dropped(chunk):
                        continue
                    if held is not None:
                        exchange.first_byte()
                        yield frame(held)
                    held = chunk
                if held is not None:  # the last chunk carries the decision
                    yield frame({**held, "thinkstop": self.result.decision()})
                status = "ok"
            except UpstreamError as exc:
                failure = exchange.upstream_error(exc)
                status, error = "upstream_error", failure.message
                yield frame(failure.body())
            yield DONE
        finally:
            await chunks.aclose()
            await exchange.finish(status, error)

    def _dropped(self, chunk: dict[str, Any]) -> bool:
        """Record a chunk's usage; True for the usage chunk the client did not ask for."""
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.result.main.exact = usage
        return usage is not None and not chunk.get("choices") and not self.body.include_usage

    async def whole(self) -> Response:
        reply = await self.upstream.relay_completion_whole(self._sent())
        self._dropped(reply)
        await self.exchange.finish("ok")
        return JSONResponse({**reply, "thinkstop": self.result.decision()})
