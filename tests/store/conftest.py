"""The store tests' fixtures: ``store`` opens every backend the contract runs against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.store.base import Store
from runtime.store.sqlite import SqliteStore


async def _open(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return await SqliteStore.open(str(tmp_path / "contract.db"))
    raise AssertionError(f"no fixture for backend {backend!r}")  # e.g. add "postgresql" here


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await _open(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
