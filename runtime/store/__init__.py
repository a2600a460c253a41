"""The store layer: the ``Store`` protocol, its backends, and opening one from a URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from runtime.clock import AlignedClock
from runtime.config import parse_database_url, redact
from runtime.errors import ConfigError
from runtime.store.base import Store
from runtime.store.sqlite import SqliteStore

logger = structlog.get_logger("runtime.store")


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


ALIGN_SAMPLES = 3
"""Readings of the server's clock an alignment takes; the one with the shortest round trip wins."""

SKEW_WARNING = timedelta(seconds=1)
"""A host clock this far from the server's is logged: it would be wrong on SQLite."""


async def align_clock(clock: AlignedClock, store: Store) -> None:
    """Set ``clock.offset`` to the server's clock minus this host's (unchanged on SQLite).

    The server's time is read ``ALIGN_SAMPLES`` times; each reading is taken to be
    the middle of its round trip, and the shortest round trip's is kept.
    """
    best: tuple[timedelta, timedelta] | None = None
    for _ in range(ALIGN_SAMPLES):
        before = datetime.now(UTC)
        server = await store.database_time()
        after = datetime.now(UTC)
        if server is None:
            return
        trip = after - before
        sample = (trip, server - (before + trip / 2))
        if best is None or sample[0] < best[0]:
            best = sample
    assert best is not None
    clock.offset = best[1]
    if abs(best[1]) >= SKEW_WARNING:
        logger.warning(
            "host_clock_skewed",
            seconds=round(best[1].total_seconds(), 3),
            detail="times are taken on the database server's clock",
        )
