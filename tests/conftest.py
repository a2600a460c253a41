"""Shared fixtures: asyncio as the anyio backend, a fresh SQLite file per test, a runtime on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from runtime import Runtime


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite is asyncio-only.
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runtime.db"


@pytest.fixture
def db_url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


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
