"""The uvicorn server that ``thinkstop serve`` runs, with the operations limits of
``general_settings`` applied (the README's operations section lists them):

- connections: :mod:`.connections` (header deadline and size, connection cap), uvicorn's
  ``timeout_keep_alive`` (``idle_connection_seconds``) and h11's header size limit;
- SIGTERM: the listening sockets close, in-flight requests run on for
  ``graceful_shutdown_seconds``, then :mod:`.drain` ends each one still running with a
  final error frame; uvicorn's own deadline comes :data:`DRAIN_MARGIN` seconds later, for
  a reply that could not even take its last frame (a client that stopped reading).

Request bodies (:mod:`.body_limit`) and keys (:mod:`.key_check`) are the app's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Final

import uvicorn

from thinkstop.proxy.config import ProxyConfig
from thinkstop.proxy.http.connections import (
    ConnectionLimits,
    default_max_connections,
    guarded_protocol,
)
from thinkstop.proxy.http.drain import Drain

DRAIN_MARGIN: Final = 2  # seconds between the drain's cut and uvicorn's own


def connection_limits(config: ProxyConfig) -> ConnectionLimits:
    general = config.general_settings
    return ConnectionLimits(header_timeout=general.header_timeout_seconds,
                            max_header_bytes=general.max_header_bytes,
                            max_connections=general.max_connections or default_max_connections(),
                            send_buffer=general.client_send_buffer_bytes)


class ProxyServer(uvicorn.Server):
    """uvicorn's server, ending the replies still running when the grace period is over,
    and calling ``on_ready`` once it listens."""

    def __init__(self, config: uvicorn.Config, *, drain: Drain | None, grace: float,
                 on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace = grace
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        cut = None
        if self.drain is not None:
            cut = asyncio.get_running_loop().call_later(self.grace, self.drain.expire)
        try:
            await super().shutdown(sockets)
        finally:
            if cut is not None:
                cut.cancel()


def build_server(app: Any, config: ProxyConfig, *, host: str, port: int,
                 drain: Drain | None = None, on_ready: Callable[[], None] | None = None,
                 **overrides: Any) -> ProxyServer:
    """The server for ``app`` (made by ``create_app(config, ...)``, whose drain is
    ``app.state.drain`` unless ``drain`` names it); ``overrides`` go to ``uvicorn.Config``
    (tests pick ``loop``, ``lifespan``...)."""
    general = config.general_settings
    grace = general.graceful_shutdown_seconds
    options: dict[str, Any] = {
        "host": host, "port": port, "log_level": "warning", "access_log": False,
        "ws": "none",  # no websocket routes: do not offer upgrades
        "http": guarded_protocol(connection_limits(config)),
        "timeout_keep_alive": general.idle_connection_seconds,
        "h11_max_incomplete_event_size": general.max_header_bytes,
        "timeout_graceful_shutdown": grace + DRAIN_MARGIN,
        **overrides,
    }
    if drain is None:
        found = getattr(getattr(app, "state", None), "drain", None)
        drain = found if isinstance(found, Drain) else None
    return ProxyServer(uvicorn.Config(app, **options), drain=drain, grace=grace,
                       on_ready=on_ready)
