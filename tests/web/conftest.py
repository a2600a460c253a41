"""Fixtures of the dashboard's tests: the demo database, the app over it, a client.

The demo project is seeded by a runtime, which then stops; the app serves the database
without a worker, as ``runtime dashboard`` does, so nothing moves under a test: a
sleeping run stays sleeping, a redriven delivery stays pending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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
