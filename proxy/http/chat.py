"""``POST /v1/chat/completions``: plan the request, run it ``n`` times, answer.

Each choice is its own halting run (``n > 1``: run concurrently, streamed interleaved
by ``index``, usage summed). Tool calls, the answer's logprobs and the reasoning reach
the client in the OpenAI shapes (:mod:`.chat_shapes`); what the loop cannot follow is
relayed untouched (:mod:`.passthrough`). The request's life around that (budgets,
errors before and after the first byte, disconnects, the log line) is
:class:`~thinkstop.proxy.http.exchange.Exchange`'s.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from fastapi.responses import JSONResponse, Response

from thinkstop.proxy.engine.run import HaltingRun
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.guard.keys import Caller
from thinkstop.proxy.http.answer import Answer, decision_of, total_usage
from thinkstop.proxy.http.chat_shapes import ChunkBuilder, completion_body
from thinkstop.proxy.http.exchange import Edge, Exchange, Plan, Receive
from thinkstop.proxy.http.fan_in import Ended, fan_in, run_all
from thinkstop.proxy.http.passthrough import ChatRelay
from thinkstop.proxy.http.protocol import ChatCompletionRequest
from thinkstop.proxy.http.request_checks import passthrough_reason
from thinkstop.proxy.http.sse import DONE, frame
from thinkstop.proxy.upstreams.base import UpstreamError


async def collect(run: HaltingRun) -> Answer:
    """Run to the end; the whole answer (for replies that are not streamed)."""
    answer = Answer()
    async for delta in run.events():
        answer.add(delta)
    return answer


class ChatService:
    """The chat endpoint's logic, free of routing details."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    async def complete(self, body: ChatCompletionRequest, caller: Caller, receive: Receive,
                       request_id: str) -> Response:
        exchange = self.edge.exchange(model=body.model, stream=body.stream, caller=caller,
                                      request_id=request_id)
        try:
            params = body.upstream_params()
            plan = await exchange.plan(body.message_dicts(), params, body.thinkstop)
            why = passthrough_reason(params)
            relay = None if why is None else ChatRelay(
                exchange, plan, why, streamed=body.stream, include_usage=body.include_usage,
                n=body.n)
        except ProxyError as exc:
            await exchange.finish(f"error_{exc.status}", exc.message)
            raise
        except BaseException:
            await exchange.finish("error")
            raise
        if relay is not None:
            return await exchange.respond(
                receive, relay.open, stream=relay.stream if body.stream else None,
                whole=relay.whole)
        exchange.open_runs(plan, body.choices)
        if body.stream:
            return await exchange.respond(
                receive, exchange.start_runs, stream=lambda: self._stream(exchange, body, plan))
        return await exchange.respond(receive, exchange.start_runs,
                                      whole=lambda: self._whole(exchange, body, plan))

    async def _whole(self, exchange: Exchange, body: ChatCompletionRequest,
                     plan: Plan) -> Response:
        answers = await run_all([collect(run) for run in exchange.runs])
        await exchange.finish("ok")
        results = exchange.results
        choices = [(a, r.finish_reason) for a, r in zip(answers, results, strict=True)]
        return JSONResponse(completion_body(
            body.model, choices, show_reasoning=plan.show_reasoning,
            usage=total_usage(results), decision=decision_of(results)))

    async def _stream(self, exchange: Exchange, body: ChatCompletionRequest,
                      plan: Plan) -> AsyncGenerator[bytes, None]:
        builder = ChunkBuilder(body.model)
        runs = exchange.runs
        status, error = "disconnected", None  # unless we get to the end
        try:
            try:
                ended = 0
                async for item in fan_in([run.events() for run in runs]):
                    if isinstance(item, Ended):
                        ended += 1
                        last = ended == len(runs) and not body.include_usage
                        decision = decision_of(exchange.results) if last else None
                        finish = runs[item.index].result.finish_reason
                        yield frame(builder.finish(item.index, finish, decision))
                        continue
                    if item.value.kind == "reasoning" and not plan.show_reasoning:
                        continue  # hidden: keep-alive comments hold the connection
                    exchange.first_byte()
                    yield frame(builder.delta(item.index, item.value))
                if body.include_usage:
                    results = exchange.results
                    yield frame(builder.usage(total_usage(results), decision_of(results)))
                status = "ok"
            except UpstreamError as exc:
                failure = exchange.upstream_error(exc)
                status, error = "upstream_error", failure.message
                yield frame(failure.body())
            yield DONE
        finally:
            await exchange.finish(status, error)
