"""Serving the app with uvicorn inside a task group, stopped by a graceful shutdown.

The socket is bound before the task reports itself started, so "started" means
connections are accepted (queued until uvicorn takes them); a port in use fails the
start with a message naming the address. uvicorn's own signal handling is off: the
service owns SIGTERM and SIGINT and calls :meth:`HttpServer.drain`.

However the server ends, :meth:`HttpServer.run` returns only once nothing of it is
left: the listening socket is closed, and no request is still being handled. That
matters to the service, which drains the server and then cancels its task group and
closes the store: a request in flight when :meth:`~HttpServer.drain` was called
still gets up to ``grace`` seconds to finish (the cancellation waits for it,
shielded), and a server cancelled without a drain cuts its connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

CUT_WAIT = 1.0
"""Seconds the handlers of requests cut at shutdown get to unwind."""


class _CutRequests(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" for a request cut on purpose.

    Cutting the requests that outlast the grace cancels their tasks; uvicorn would log
    each as a crash, traceback and all. :meth:`HttpServer._stop` logs them once, as
    ``http_requests_cut``; any other exception is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        return not (info and isinstance(info[1], asyncio.CancelledError))


_CUT_REQUESTS = _CutRequests()
"""Added to uvicorn's logger when a server runs (once: ``addFilter`` skips one already there)."""


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
        self._deadline: float | None = None

    @property
    def port(self) -> int | None:
        """The port it listens on once started (the one the OS chose for port 0)."""
        return self._port

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen, report started, and serve until :meth:`drain` (or cancellation)."""
        sock = bind(self.address)
        self._deadline = None
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(int(self.grace), 1),
            server_header=False,
        )
        logging.getLogger("uvicorn.error").addFilter(_CUT_REQUESTS)
        server = _Server(config)
        self._server = server
        shown = HttpAddress(self.address.host, self._port)
        logger.info("http_listening", address=str(shown), url=f"http://{shown}/")
        task_status.started()
        try:
            await server.serve(sockets=[sock])
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(server, sock)
            self._server = None

    def drain(self) -> None:
        """Stop accepting connections; requests in flight get ``grace`` seconds.

        :meth:`run` returns once they are answered (or the grace is over), even when
        its task is cancelled meanwhile.
        """
        server = self._server
        if server is not None and self._deadline is None:
            self._deadline = anyio.current_time() + self.grace
            server.should_exit = True
            # Refused from now on, not once uvicorn's loop looks at should_exit.
            for listener in getattr(server, "servers", []):
                listener.close()

    async def _stop(self, server: _Server, sock: socket.socket) -> None:
        """Close what uvicorn may have left open when its serving was cut short.

        After a drain, requests in flight get what is left of the grace; then (or at
        once, without a drain) their connections are cut and their tasks cancelled.
        Once uvicorn finished its own shutdown there is nothing left to do.
        """
        for listener in getattr(server, "servers", []):
            listener.close()  # unregisters the socket from the loop before closing it
        if sock.fileno() != -1:
            # Cancelled inside uvicorn's startup, the socket may be registered with the
            # loop by a listener uvicorn never kept: a later socket on the same file
            # descriptor would then never be served.
            asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after
        if self._deadline is not None:
            with anyio.move_on_after(self._deadline - anyio.current_time()):
                while state.tasks:  # noqa: ASYNC110 - uvicorn's tasks, not ours to await
                    await anyio.sleep(0.01)
        if state.tasks:
            logger.warning("http_requests_cut", requests=len(state.tasks))
        for connection in list(state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        for task in list(state.tasks):
            task.cancel()
        # The cancelled handlers unwind (a store must not close under them).
        with anyio.move_on_after(CUT_WAIT):
            while state.tasks:  # noqa: ASYNC110 - as above
                await anyio.sleep(0.01)

    @property
    def stopped(self) -> bool:
        """It is not serving (never started, or shut down)."""
        return self._server is None
