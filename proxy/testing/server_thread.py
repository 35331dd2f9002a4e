"""Run any ASGI app under a real uvicorn server on loopback, in a background thread.

Each server gets its own thread and event loop, so sync tests, async tests and other
servers can all talk to it over real sockets.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal

import uvicorn


class ServerThread:
    """``with ServerThread(app) as server: server.url`` (``http://127.0.0.1:PORT``).

    ``server``: run this uvicorn server (on ``host``, port 0 for any) instead of one built
    here for ``app``; thinkstop's own (``thinkstop.proxy.http.server.build_server``), say.
    """

    def __init__(self, app: Any = None, *, host: str = "127.0.0.1", port: int = 0,
                 lifespan: Literal["auto", "on", "off"] = "off",
                 startup_timeout: float = 15.0, server: uvicorn.Server | None = None) -> None:
        self.host = host
        self._startup_timeout = startup_timeout
        self.port = 0
        if server is not None:
            self.server = server
            self._thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
            return
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan=lifespan,
            interface="asgi3",
            log_level="warning",
            access_log=False,
            ws="none",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn server thread exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn server did not start")
            time.sleep(0.005)
        sockets = self.server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port free right now (nothing listens on it until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
