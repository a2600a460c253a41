"""Two loops that watch a runtime's database: its file's replacement, other processes' commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import structlog

from runtime.clock import Clock
from runtime.errors import DatabaseReplacedError, StoreError
from runtime.store.base import Store

logger = structlog.get_logger("runtime")

WATCH_TIMEOUT = 1.0
"""Seconds one wait for another process's commit lasts before it starts over (the
store polls within it: SQLite every 20 ms, PostgreSQL never, it is notified)."""

RETRY_AFTER = 0.5
"""Seconds before waiting again after the store failed to report changes."""

FILE_CHECK_INTERVAL = 1.0
"""Seconds between checks that the database file is still the one this process opened."""


async def guard_file(
    store: Store, clock: Clock, *, task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    """Raise when the database file is deleted or replaced under ``store`` (stopping the runtime).

    Its connections would go on writing to the old file, which no other process
    (a client, the CLI, the next start) can see: every commit from then on is lost.

    Raises:
        DatabaseReplacedError: the file is gone or another file took its place.
    """
    task_status.started()
    while True:
        await clock.sleep(FILE_CHECK_INTERVAL)
        try:
            # One stat() of the file, on the loop: microseconds on a local disk, and the
            # file is local (SQLite's WAL mode does not work over a network file system).
            await store.check_file()
        except DatabaseReplacedError as exc:
            logger.error("database_file_lost", path=exc.path, error=str(exc))
            raise


async def watch_commits(
    store: Store, wake: Callable[[], None], *, task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    """Call ``wake`` whenever another process commits (a Client's emit or run), until cancelled."""
    last = await store.change_token()
    task_status.started()
    while True:
        try:
            token = await store.wait_change(last, WATCH_TIMEOUT)
        except StoreError:
            logger.exception("watch_failed")
            # Real time, not the injected clock: this waits on the database itself.
            await anyio.sleep(RETRY_AFTER)
            continue
        if token != last:
            last = token
            wake()
