"""The ASGI app: the JSON API and the dashboard.

:func:`create_app` is what a user mounts in their own FastAPI or Starlette app; the
service and ``runtime dashboard`` build theirs with :func:`build_app` on the store
they already hold.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from runtime.clock import AlignedClock, Clock
from runtime.config import http_token, parse_database_url
from runtime.errors import ConfigError
from runtime.limits import text
from runtime.store import align_clock, open_store
from runtime.store.base import Store
from runtime.telemetry import Telemetry
from runtime.web import api, auth, metrics, pages
from runtime.web.console import Console, StoreSource
from runtime.web.project import Project

TOKEN_VARIABLE = "RUNTIME_HTTP_TOKEN"


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 (no such path, a method a path does not take): JSON under ``/api``
    (and for clients that do not ask for HTML), the dashboard's error pages otherwise."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405) and pages.wants_page(request):
        page = (
            pages.not_found(request)
            if exc.status_code == 404
            else pages.method_not_allowed(request)
        )
        page.headers.update(exc.headers or {})
        return page
    kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    message = {
        404: f"no such path: {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    response = api.error_response(exc.status_code, kind, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def build_app(
    console: Console,
    *,
    token: str | None,
    loopback_only: bool = True,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    telemetry: Telemetry | None = None,
) -> Starlette:
    """The app over ``console``; with ``token``, every request needs it (:mod:`.auth`).

    ``telemetry``, the serving runtime's, adds its steps and firings to ``/metrics``.
    Without a token and with ``loopback_only``, only requests addressed to a loopback
    name (``Host``) are served, against DNS rebinding.
    """
    gate = Middleware(auth.TokenGate, token=token, loopback_only=loopback_only)
    app = Starlette(
        routes=[*api.routes(), *metrics.routes(), *auth.routes(), *pages.routes()],
        middleware=[gate],
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=lifespan,
    )
    app.state.console = console
    app.state.token = token
    app.state.telemetry = telemetry
    return app


class _LazyStore:
    """The app's own store: opened on the first request, closed at shutdown.

    A mounted app gets no lifespan events from its parent, so the store cannot wait
    for one; it opens when first needed (as :class:`runtime.Client`'s does).
    """

    def __init__(self, database_url: str, base_dir: Path | None, clock: Clock) -> None:
        self._url = database_url
        self._base_dir = base_dir
        self._clock = clock
        self._store: Store | None = None
        self._lock = anyio.Lock()

    async def __call__(self) -> Store:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    store = await open_store(self._url, self._base_dir, create=True)
                    if isinstance(self._clock, AlignedClock):
                        await align_clock(self._clock, store)
                    self._store = store
        return self._store

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()


def create_app(
    database_url: str,
    token: str | None = None,
    *,
    project: Path | str | None = ".",
    loopback_only: bool = True,
) -> Starlette:
    """The HTTP API and dashboard over ``database_url``, as an ASGI app.

    Mount it in your own app (``app.mount("/runtime", create_app(url))``) or serve it
    with any ASGI server. The database is opened on the first request (the tables are
    created if missing) and closed when the app's lifespan ends.

    Args:
        database_url: the URL the service uses (``sqlite:///...``, ``postgresql://...``).
        token: every request must carry it (``Authorization: Bearer ...``; the dashboard
            asks for it once); default the ``RUNTIME_HTTP_TOKEN`` variable, then the
            project's ``http_token``; ``None`` with neither set: no token is asked.
        project: the project folder to load as ``runtime start`` does (default the
            working directory), to know its workflows, validate durable input and show
            its schedules; ``None`` for none: runs are then started by name, as
            :class:`runtime.Client` starts them.
        loopback_only: without a token, answer only requests addressed to a loopback
            name (``Host``: ``localhost``, ``127.0.0.1``, ``[::1]``, any port) and refuse
            others with 403, so that a web page cannot reach the app by pointing its own
            name at 127.0.0.1 (DNS rebinding). ``False`` serves any name: only when the
            server in front authenticates every request itself. With a token, the name
            is never checked.

    Raises:
        ConfigError: a bad URL, a bad token, or a project that does not load.
    """
    text(database_url, "create_app(database_url=...)", error=ConfigError)
    base_dir = Path(project).resolve() if project is not None else None
    parse_database_url(database_url, base_dir)
    loaded = Project.load(project) if project is not None else Project.unknown()
    chosen = token if token is not None else os.environ.get(TOKEN_VARIABLE)
    if chosen is None and project is not None:
        chosen = loaded.http_token
    checked = http_token(chosen, "create_app(token=...)")
    clock = AlignedClock()
    source = _LazyStore(database_url, base_dir, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await source.close()

    console = Console(source, loaded, clock)
    return build_app(console, token=checked, loopback_only=loopback_only, lifespan=lifespan)


def store_source(store: Store) -> StoreSource:
    """A :data:`StoreSource` for a store that is already open (the service's own)."""

    async def given() -> Store:
        return store

    return given
