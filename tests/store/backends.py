"""The backends the store contract runs against, and the protocol-only view it calls them through.

A backend joins the contract suite with one entry in :data:`BACKENDS`: a factory that
makes a fresh, empty database and yields a function opening a store on it. Every
contract test (``test_contract*.py``, through the fixtures of ``conftest.py``) then
runs against it, with the backend's name in the test's id
(``test_claim_run_is_compare_and_set_on_the_owner[sqlite]``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from runtime.store import open_store as open_url
from runtime.store.base import Store
from runtime.store.sqlite import SqliteStore
from tests.helpers.postgres import fresh_schema

Opener = Callable[[], Awaitable[Store]]
"""Opens one more store on the database under test (another process, as far as it can tell)."""

STORE_METHODS = frozenset(
    name for name, _ in inspect.getmembers(Store, inspect.iscoroutinefunction)
)
"""Every method of the ``Store`` protocol, those of its bases (``PruneStore``) included."""


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Opener]:
    """A new SQLite file; each store opened on it has its own connections."""
    path = str(tmp_path / "contract.db")

    async def open_store() -> Store:
        return await SqliteStore.open(path)

    yield open_store


@asynccontextmanager
async def postgresql_database(tmp_path: Path) -> AsyncIterator[Opener]:
    """A fresh schema on the test server (dropped on exit); each store has its own pool.

    Skipped with the reason when no server answers (failed under CI instead).
    """
    async with fresh_schema() as url:

        async def open_store() -> Store:
            return await open_url(url)

        yield open_store


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Opener]]] = {
    "sqlite": sqlite_database,
    "postgresql": postgresql_database,
}
"""The backends the contract runs against: name -> a fresh, empty database's opener."""


class ProtocolOnly:
    """A store seen through the ``Store`` protocol alone.

    The contract must hold for every backend, so a contract test that reached for
    anything else (a SQLite store's ``path``, a private attribute) fails here at once
    instead of passing on SQLite and failing only when another backend joins.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name not in STORE_METHODS:
            raise AttributeError(f"{name!r} is not a method of the Store protocol")
        return getattr(self._store, name)
