"""``POST /v1/responses`` (streamed or whole) and ``GET /v1/responses/{id}``.

The request is translated into chat messages (:mod:`.responses_request`) and runs the same
halting loop as a chat request (:class:`~thinkstop.proxy.engine.run.HaltingRun`): the
reasoning is probed and halted, and the model's own next step (text, or function calls)
becomes the response's output items (:mod:`.responses_events`). A finished response is
kept in the replica's bounded store (unless ``store: false``) so that
``previous_response_id`` can continue it (:mod:`.responses_store`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from fastapi.responses import JSONResponse, Response

from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.keys import Caller
from thinkstop.proxy.http.answer import Answer, decision_of, total_usage
from thinkstop.proxy.http.exchange import Edge, Exchange, Plan, Receive
from thinkstop.proxy.http.responses_events import ResponseWriter, Status
from thinkstop.proxy.http.responses_request import (
    ResponsesRequest,
    chat_messages,
    chat_params,
    input_messages,
)
from thinkstop.proxy.http.responses_store import ResponseStore, Stored
from thinkstop.proxy.http.sse import named_frame
from thinkstop.proxy.upstreams.base import UpstreamError


class _Turn:
    """One Responses request in flight: its writer, its answer, the conversation so far."""

    def __init__(self, body: ResponsesRequest, plan: Plan,
                 conversation: list[dict[str, Any]]) -> None:
        self.body = body
        self.writer = ResponseWriter(body, show_reasoning=plan.show_reasoning)
        self.answer = Answer()
        self.conversation = conversation  # without the instructions (not carried over)


class ResponsesService:
    """The Responses endpoints' logic."""

    def __init__(self, edge: Edge, store: ResponseStore) -> None:
        self.edge = edge
        self.store = store

    def retrieve(self, response_id: str) -> dict[str, Any]:
        stored = self.store.get(response_id)
        if stored is None:
            raise ProxyError(404, f"response {response_id!r} not found (this replica keeps "
                             f"its last {self.store.capacity} responses in memory)",
                             type_="not_found_error", code="response_not_found")
        return stored.response

    async def create(self, body: ResponsesRequest, caller: Caller, receive: Receive,
                     request_id: str) -> Response:
        exchange = self.edge.exchange(model=body.model, stream=body.stream, caller=caller,
                                      request_id=request_id)
        try:
            body.check_supported()
            prior = (self.store.previous(body.previous_response_id).messages
                     if body.previous_response_id else [])
            plan = await exchange.plan(chat_messages(body, prior), chat_params(body),
                                       body.thinkstop)
        except ProxyError as exc:
            await exchange.finish(f"error_{exc.status}", exc.message)
            raise
        except BaseException:
            await exchange.finish("error")
            raise
        turn = _Turn(body, plan, [*prior, *input_messages(body.input)])
        exchange.open_runs(plan)
        if body.stream:
            return await exchange.respond(receive, exchange.start_runs,
                                          stream=lambda: self._stream(exchange, turn))
        return await exchange.respond(receive, exchange.start_runs,
                                      whole=lambda: self._whole(exchange, turn))

    def _outcome(self, exchange: Exchange) -> tuple[Status, dict[str, Any], dict[str, Any]]:
        results = exchange.results
        status: Status = "incomplete" if results[0].finish_reason == "length" else "completed"
        return status, total_usage(results), decision_of(results)

    def _keep(self, turn: _Turn, response: dict[str, Any]) -> None:
        if turn.body.store is not False:
            messages = [*turn.conversation, turn.answer.message()]
            self.store.put(response["id"], Stored(turn.body.model, messages, response))

    async def _whole(self, exchange: Exchange, turn: _Turn) -> Response:
        async for delta in exchange.runs[0].events():
            turn.answer.add(delta)
            turn.writer.add(delta)
        await exchange.finish("ok")
        status, usage, decision = self._outcome(exchange)
        turn.writer.closing(status, usage, decision)  # closes the items; no stream to send
        response = turn.writer.response(status, usage, decision)
        self._keep(turn, response)
        return JSONResponse(response)

    async def _stream(self, exchange: Exchange, turn: _Turn) -> AsyncGenerator[bytes, None]:
        writer = turn.writer
        status, error = "disconnected", None
        try:
            try:
                for kind, payload in writer.opening():
                    yield named_frame(kind, payload)
                async for delta in exchange.runs[0].events():
                    turn.answer.add(delta)
                    for kind, payload in writer.add(delta):
                        exchange.first_byte()
                        yield named_frame(kind, payload)
                outcome, usage, decision = self._outcome(exchange)
                closing = writer.closing(outcome, usage, decision)
                self._keep(turn, closing[-1][1]["response"])
                for kind, payload in closing:
                    yield named_frame(kind, payload)
                status = "ok"
            except UpstreamError as exc:
                failure = exchange.upstream_error(exc)
                status, error = "upstream_error", failure.message
                _, usage, decision = self._outcome(exchange)
                for kind, payload in writer.failing(failure.body(), usage, decision):
                    yield named_frame(kind, payload)
        finally:
            await exchange.finish(status, error)
