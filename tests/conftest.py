"""Shared fixtures: asyncio as the anyio backend, a fresh database per test, a runtime on it.

The database is a SQLite file unless the test's ``backend`` says otherwise; the
directories whose tests run on every backend parametrize ``backend`` (see
``tests/helpers/backends.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from runtime import Runtime
from tests.helpers.postgres import new_schema


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite is asyncio-only.
    return "asyncio"


@pytest.fixture
def backend() -> str:
    """The database backend under test; a directory may parametrize it over every backend."""
    return "sqlite"


@pytest.fixture
def db_path(backend: str, tmp_path: Path) -> Path:
    """The test's SQLite file; a test that needs it is about SQLite (``sqlite_only``)."""
    if backend != "sqlite":
        pytest.fail(
            f"the test uses db_path, the SQLite file, but runs on {backend}: "
            "mark it tests.helpers.backends.sqlite_only or use db_url",
            pytrace=False,
        )
    return tmp_path / "runtime.db"


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of the test's fresh database: a SQLite file, or a schema of its own on
    the test PostgreSQL server (skipped locally when none answers, failed under CI)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'runtime.db'}"
    elif backend == "postgresql":
        with new_schema() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}: expected sqlite or postgresql")


@pytest.fixture
async def rt(db_url: str) -> AsyncIterator[Runtime]:
    """A started ``Runtime`` on the test's database (a suite may override it)."""
    async with Runtime(database=db_url) as runtime:
        yield runtime


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each test starts with structlog unconfigured: a CLI test that configured a level
    (``--log-level error``) must not filter the next test's captured lines."""
    yield
    structlog.reset_defaults()
