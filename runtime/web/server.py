"""Serving the app with uvicorn inside a task group, stopped by a graceful shutdown.

The socket is bound before the task reports itself started, so "started" means
connections are accepted (queued until uvicorn takes them); a port in use fails the
start with a message naming the address. uvicorn's own signal handling is off: the
service owns SIGTERM and SIGINT and calls :meth:`HttpServer.drain`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import structlog
import uvicorn
from starlette.types import ASGIApp

from runtime.config import HttpAddress
from runtime.errors import ConfigError

logger = structlog.get_logger("runtime.web")

BACKLOG = 2048
"""Connections the kernel queues before uvicorn accepts them."""


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers (the service has its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(address: HttpAddress) -> socket.socket:
    """A listening socket on ``address``.

    Raises:
        ConfigError: the address cannot be listened on (in use, not this host's, ...).
    """
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"http: cannot listen on {address}: {exc.strerror}") from None
    family, kind, proto, _, where = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"http: cannot listen on {address}: {exc.strerror or exc}") from None
    return sock


class HttpServer:
    """The HTTP API, dashboard and metrics of one process, served by uvicorn.

    Args:
        app: the ASGI app (:func:`runtime.web.app.build_app`).
        address: where to listen.
        grace: seconds requests in flight get to finish once :meth:`drain` is called.
    """

    def __init__(self, app: ASGIApp, address: HttpAddress, *, grace: float = 5.0) -> None:
        self.app = app
        self.address = address
        self.grace = grace
        self._server: _Server | None = None
        self._port: int | None = None

    @property
    def port(self) -> int | None:
        """The port it listens on once started (the one the OS chose for port 0)."""
        return self._port

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen, report started, and serve until :meth:`drain` (or cancellation)."""
        sock = bind(self.address)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(int(self.grace), 1),
            server_header=False,
        )
        server = _Server(config)
        self._server = server
        shown = HttpAddress(self.address.host, self._port)
        logger.info("http_listening", address=str(shown), url=f"http://{shown}/")
        task_status.started()
        try:
            await server.serve(sockets=[sock])
        finally:
            # Cancelled rather than drained (a Runtime left by ``async with``), uvicorn
            # never shut down: its listener is still registered with the loop and its
            # connections still answer. Shut it down before the socket goes, or the next
            # socket given this descriptor is never watched (no later server in this loop
            # accepts) and kept-alive clients are answered from a closed store.
            if any(listener.is_serving() for listener in getattr(server, "servers", ())):
                with anyio.CancelScope(shield=True):
                    await server.shutdown(sockets=[sock])
            sock.close()
            self._server = None

    def drain(self) -> None:
        """Stop accepting connections; requests in flight get ``grace`` seconds."""
        if self._server is not None:
            self._server.should_exit = True

    @property
    def stopped(self) -> bool:
        """It is not serving (never started, or shut down)."""
        return self._server is None
