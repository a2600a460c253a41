"""Running a directory's tests against every database backend: the ``backend`` fixture.

The root conftest's ``db_url`` (and so ``rt``) opens the database of the test's
``backend``, SQLite unless said otherwise. A directory whose tests should hold on
every backend imports :func:`backend` into its conftest; each test there that
touches the database then runs once per backend, its id naming it
(``test_retry_succeeds[postgresql]``). One suite, not copies.

A test that is about SQLite itself (it opens the file, reads the WAL, kills the
process holding the file, expects a SQLite-only error) is marked :data:`sqlite_only`
and runs once, on SQLite. Asking for ``db_path`` on another backend fails the
test, saying so, rather than letting it pass by reading a file nobody wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest

from runtime.store import open_store
from runtime.store.base import Store

BACKENDS = ("sqlite", "postgresql")
"""The backends the engine, bus, scheduler and management tests run against."""

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
"""Run a test on SQLite only (in a directory that runs on every backend)."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test: each of :data:`BACKENDS` in turn."""
    return cast(str, request.param)


@asynccontextmanager
async def opened(db_url: str) -> AsyncIterator[Store]:
    """A store of its own on ``db_url`` (another process, say the CLI), closed on exit."""
    store = await open_store(db_url)
    try:
        yield store
    finally:
        await store.close()
