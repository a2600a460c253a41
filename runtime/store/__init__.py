"""The store layer: the ``Store`` protocol, its backends, and opening one from a URL."""

from __future__ import annotations

from pathlib import Path

from runtime.config import parse_database_url, redact
from runtime.errors import ConfigError
from runtime.store.base import Store
from runtime.store.sqlite import SqliteStore


async def open_store(database: str, base_dir: Path | None = None, *, create: bool = True) -> Store:
    """Open the store a database URL names (creating or migrating its schema).

    With ``create=False`` (commands that only read) a missing database is an error
    (:class:`~runtime.errors.DatabaseNotFoundError`), and nothing is created.
    """
    url = parse_database_url(database, base_dir)
    if url.scheme == "sqlite":
        synchronous = url.options.get("synchronous", "normal")
        fast = url.options.get("fast_path", "on").lower() not in ("off", "0", "false", "no")
        return await SqliteStore.open(url.path, synchronous=synchronous, fast=fast, create=create)
    if url.scheme == "postgresql":
        try:
            from runtime.store.postgres import PostgresStore
        except ImportError as exc:
            raise ConfigError(
                f"database URL {redact(database)!r} needs the PostgreSQL driver, which is not "
                f'installed ({exc}); install it with: pip install "runtime[postgres]"'
            ) from exc
        store: Store = await PostgresStore.open(
            url.path, schema=url.options["schema"], create=create
        )
        return store
    raise ConfigError(f"no store for {redact(database)!r}")
