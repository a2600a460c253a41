"""Fixtures of the dashboard's tests: the demo database, the app over it, a client.

The demo project is seeded by a runtime, which then stops; the app serves the database
without a worker, as ``runtime dashboard`` does, so nothing moves under a test: a
sleeping run stays sleeping, a redriven delivery stays pending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from runtime.clock import SystemClock
from runtime.store import open_store
from runtime.store.base import Store
from runtime.web.app import build_app, store_source
from runtime.web.console import Console
from runtime.web.project import Project
from tests.web.demo import Seeded, project, runtime, seed


@dataclass
class Demo:
    """The seeded database's store, the ids seeded, the dashboard app, a client of it."""

    store: Store
    ids: Seeded
    project: Project
    app: Starlette
    client: httpx.AsyncClient


def dashboard_app(store: Store, known: Project, token: str | None = None) -> Starlette:
    """The app ``runtime dashboard`` would serve over ``store``."""
    return build_app(Console(store_source(store), known, SystemClock()), token=token)


def client_of(app: Starlette) -> httpx.AsyncClient:
    """A client of ``app``, in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan around the block as a server does: startup before it,
    shutdown after (where :func:`runtime.web.create_app`'s app closes its store)."""
    to_app, app_receives = anyio.create_memory_object_stream[dict[str, Any]](1)
    app_sends, from_app = anyio.create_memory_object_stream[dict[str, Any]](1)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with to_app, app_receives, app_sends, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, scope, app_receives.receive, app_sends.send)
        await to_app.send({"type": "lifespan.startup"})
        started = await from_app.receive()
        assert started["type"] == "lifespan.startup.complete", started
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True), anyio.fail_after(10):
                await to_app.send({"type": "lifespan.shutdown"})
                stopped = await from_app.receive()
            assert stopped["type"] == "lifespan.shutdown.complete", stopped


async def seeded_database(url: str) -> tuple[Seeded, Project]:
    """The demo project seeded on ``url`` by a runtime that then stops."""
    async with runtime(url) as rt:
        ids = await seed(rt)
    return ids, project(rt)


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    ids, known = await seeded_database(url)
    store = await open_store(url)
    try:
        app = dashboard_app(store, known)
        async with client_of(app) as client:
            yield Demo(store, ids, known, app, client)
    finally:
        await store.close()
