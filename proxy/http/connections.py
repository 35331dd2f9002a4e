"""Connection limits that uvicorn's HTTP protocols lack: slow or huge headers, and too
many connections.

uvicorn closes a kept-alive connection left idle (``timeout_keep_alive``) and can answer
503 past ``limit_concurrency``, but it sets no deadline on a request's headers: a client
sending one header byte every few seconds (slowloris) held its connection, and a file
descriptor, for ever (1,000 such connections: none closed after 40 s), and
``limit_concurrency`` still accepts and holds every connection, counting the slow ones
against the limit. :class:`GuardedProtocol` wraps uvicorn's own protocol (httptools, or
h11) and adds:

- a header deadline: a request's line and headers must be complete within
  ``header_timeout`` seconds of the connection opening, or, on a kept-alive
  connection, of the next request's first byte; else the connection is closed;
- a header size limit: ``max_header_bytes`` received while waiting for the headers
  closes the connection (h11 has its own limit, set to the same; httptools has none);
- a connection cap: past ``max_connections`` open connections, the one that has waited
  longest for its headers is closed to make room, so slow clients go first and a request
  in progress is never cut; when every connection is busy with a request, the new one
  is closed at once.

While a request runs, no timer of ours does: the body's deadline is the app's
(:mod:`.body_limit`, a 408), and a reply may stream for as long as it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

DEFAULT_MAX_CONNECTIONS: Final = 4096  # the ceiling of the default, whatever the fd limit


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """``general_settings``' limits on client connections."""

    header_timeout: float
    max_header_bytes: int
    max_connections: int
    send_buffer: int | None = None  # SO_SNDBUF of each connection; None: the OS default


def default_max_connections() -> int:
    """Half the process's open-file limit (the other half for upstream connections,
    files and the rest), at most :data:`DEFAULT_MAX_CONNECTIONS`."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 1024
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return DEFAULT_MAX_CONNECTIONS
    return max(1, min(DEFAULT_MAX_CONNECTIONS, soft // 2))


class GuardedProtocol(asyncio.Protocol):
    """uvicorn's HTTP protocol (``inner_class``) for one connection, with the limits.

    Use :func:`guarded_protocol` for a subclass bound to one server's limits; uvicorn
    builds one instance per connection with its usual arguments.
    """

    limits: ClassVar[ConnectionLimits]
    inner_class: ClassVar[type[asyncio.Protocol]]
    # This server's connections waiting for a request's headers, oldest first.
    waiting: ClassVar[dict[GuardedProtocol, None]]

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.inner: Any = self.inner_class(  # type: ignore[call-arg]
            config=config, server_state=server_state, app_state=app_state, _loop=_loop)
        self.loop = _loop or asyncio.get_event_loop()
        self.connections: set[Any] = server_state.connections
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.received = 0  # bytes received while waiting for the headers

    # -- asyncio.Protocol, forwarded ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        if self.limits.send_buffer is not None:
            # Linux autotunes a send buffer up to tcp_wmem's max (4 MB): for a client that
            # stops reading, that is hundreds of thousands of tokens read from the upstream
            # and held in the kernel, past the proxy's own bounded buffers.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                    self.limits.send_buffer)
        self.inner.connection_made(transport)
        self._wait()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)
        if self.transport is None or self.transport.is_closing():
            return
        if not self._between_requests():
            self._stop_waiting()
            return
        if self not in self.waiting:
            self._wait()  # a kept-alive connection's next request began
        self.received += len(data)
        if self.received > self.limits.max_header_bytes:
            self._drop()

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- the limits --------------------------------------------------------------------
    def _between_requests(self) -> bool:
        """No request in progress: before the first one's headers are complete, or
        after a reply, before the next one's are."""
        cycle = getattr(self.inner, "cycle", None)
        return cycle is None or bool(cycle.response_complete)

    def _wait(self) -> None:
        self._stop_waiting()
        self.received = 0
        self.waiting[self] = None
        self.timer = self.loop.call_later(self.limits.header_timeout, self._expired)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        if self._between_requests():
            self._drop()
        else:
            self._stop_waiting()  # the headers came (a pipelined request, say)

    def _make_room(self) -> None:
        oldest = next(iter(self.waiting))
        (self if oldest is self else oldest)._drop()

    def _drop(self) -> None:
        self._stop_waiting()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits,
                     inner: type[asyncio.Protocol] | None = None) -> type[GuardedProtocol]:
    """A protocol class for one server: ``inner`` (default: uvicorn's ``auto``, httptools
    when installed, else h11) with ``limits``."""
    if inner is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        inner = AutoHTTPProtocol

    class Guarded(GuardedProtocol):
        pass

    Guarded.limits = limits
    Guarded.inner_class = inner
    Guarded.waiting = {}
    return Guarded
