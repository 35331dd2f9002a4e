"""What the halting loop cannot follow is relayed untouched, and the decision says why.

Legacy ``functions`` / ``function_call``, custom (non-function) tools and audio output
have deltas the loop does not read; rather than refuse them or lose their pieces, the
proxy relays the upstream's own chunks (or reply) as they are, adding only the
``thinkstop`` decision: ``reason: "passthrough"``, ``passthrough``: why. Only chat
upstreams can relay a chat request (:class:`Relaying`); the usage the proxy asks for to
count the tokens is dropped again when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol, runtime_checkable

from fastapi.responses import JSONResponse, Response

from thinkstop.proxy.engine.accounting import RunResult
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.http.exchange import Exchange, Plan
from thinkstop.proxy.http.sse import DONE, frame
from thinkstop.proxy.upstreams.base import ChatRequest, Upstream, UpstreamError
from thinkstop.proxy.upstreams.parsing import parse_usage


@runtime_checkable
class Relaying(Protocol):
    """An upstream that can pass a chat request through untouched."""

    def relay(self, request: ChatRequest) -> AsyncGenerator[dict[str, Any], None]: ...

    async def relay_whole(self, request: ChatRequest) -> dict[str, Any]: ...


def passthrough_result(policy: str, why: str) -> RunResult:
    """The result of a relayed request: not monitored, tokens from the upstream's usage."""
    return RunResult(policy=policy, enabled=False, reason="passthrough", passthrough=why)


def relaying(model: str, upstream: Upstream, why: str) -> Relaying:
    if not isinstance(upstream, Relaying):
        raise ProxyError(400, f"{why}; model {model!r} is not served through a chat API, "
                         "so it cannot be relayed either", code="unsupported_parameter")
    return upstream


class ChatRelay:
    """One relayed chat request, streamed or whole."""

    def __init__(self, exchange: Exchange, plan: Plan, why: str, *, streamed: bool,
                 include_usage: bool, n: int | None = None) -> None:
        self.exchange = exchange
        self.upstream = relaying(exchange.model, plan.route.upstream, why)
        request = plan.request
        # The proxy's own fields go back in: the upstream answers them itself here.
        params = {**request.params, **({"n": n} if n is not None else {})}
        self.request = ChatRequest(request.model, request.messages, params)
        self.streamed = streamed
        self.include_usage = include_usage
        self.result = passthrough_result(plan.options.policy or "", why)
        exchange.passthrough = self.result
        self._chunks: AsyncGenerator[dict[str, Any], None] | None = None
        self._first: dict[str, Any] | None = None

    async def open(self) -> None:
        """Open the upstream stream and read its first chunk (errors raise here); a reply
        that is not streamed is asked for whole, in :meth:`whole`."""
        if not self.streamed:
            return
        self._chunks = self.upstream.relay(self.request)
        try:
            self._first = await anext(self._chunks)
        except StopAsyncIteration:
            self._first = None
        except BaseException:
            await self._chunks.aclose()
            raise

    def _count(self, chunk: dict[str, Any]) -> bool:
        """Record a chunk's usage; True when it is the usage chunk the client did not want."""
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.result.main.exact = usage
        return usage is not None and not chunk.get("choices") and not self.include_usage

    async def stream(self) -> AsyncGenerator[bytes, None]:
        exchange = self.exchange
        status, error = "disconnected", None
        held: dict[str, Any] | None = None
        assert self._chunks is not None
        chunks = _chain([] if self._first is None else [self._first], self._chunks)
        try:
            try:
                async for chunk in chunks:
                    for choice in chunk.get("choices") or ():
                        self.result.finish_reason = choice.get("finish_reason") or (
                            self.result.finish_reason)
                    if self._count(chunk):
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
            await self._chunks.aclose()
            await exchange.finish(status, error)

    async def whole(self) -> Response:
        reply = await self.upstream.relay_whole(self.request)
        self._count(reply)
        await self.exchange.finish("ok")
        return JSONResponse({**reply, "thinkstop": self.result.decision()})


async def _chain(first: list[dict[str, Any]], rest: AsyncGenerator[dict[str, Any], None]
                 ) -> AsyncGenerator[dict[str, Any], None]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk
