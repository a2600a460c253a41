"""The store tests' fixtures: ``store`` opens each backend of ``backends.BACKENDS`` in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from runtime.store.base import Store
from tests.store.backends import BACKENDS, Opener, ProtocolOnly


@pytest.fixture(params=list(BACKENDS))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores on one fresh database of each backend in turn; closes them after."""
    opened: list[Store] = []
    async with BACKENDS[request.param](tmp_path) as open_backend:

        async def open_store() -> Store:
            store = await open_backend()
            opened.append(store)
            return cast(Store, ProtocolOnly(store))

        try:
            yield open_store
        finally:
            for store in reversed(opened):
                await store.close()


@pytest.fixture
async def store(open_store: Opener) -> Store:
    """A store on a fresh, empty database of the backend under test."""
    return await open_store()


@pytest.fixture
async def other(store: Store, open_store: Opener) -> Store:
    """A second store on ``store``'s database: another process, as far as it can tell."""
    return await open_store()
