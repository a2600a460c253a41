"""The SQLite store's workers table: registration, heartbeats, and releasing the dead's work."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from runtime.clock import to_text
from runtime.store.records import WorkerRow
from runtime.store.rows import worker_row
from runtime.store.sqlite_core import SqliteCore
from runtime.store.sqlite_tables import WORKERS


class WorkersMixin(SqliteCore):
    """``upsert_worker``, ``heartbeat``, ``list_workers``, ``remove_workers`` (the protocol)."""

    async def upsert_worker(self, worker: WorkerRow) -> None:
        params = (
            worker.id,
            worker.host,
            worker.pid,
            worker.process_start,
            to_text(worker.started_at),
            to_text(worker.heartbeat_at),
        )
        await self._write(
            lambda db: db.execute(
                "INSERT INTO workers (id, host, pid, process_start, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                params,
            )
        )

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        stamp = to_text(now)
        return await self._write(
            lambda db: (
                db.execute(
                    "UPDATE workers SET heartbeat_at = ? WHERE id = ?", (stamp, worker_id)
                ).rowcount
                == 1
            )
        )

    async def list_workers(self) -> list[WorkerRow]:
        rows = await self._read(
            lambda db: db.execute(f"SELECT {WORKERS.sql} FROM workers ORDER BY id").fetchall()
        )
        with self._decoding("list_workers"):
            return [worker_row(row) for row in WORKERS.all_named(rows)]

    async def remove_workers(self, worker_ids: Sequence[str], now: datetime) -> int:
        if not worker_ids:
            return 0
        marks = ", ".join("?" * len(worker_ids))
        stamp = to_text(now)

        def write(db: sqlite3.Connection) -> int:
            released = db.execute(
                "UPDATE runs INDEXED BY runs_owner SET owner_id = NULL, updated_at = ?, "
                "status = CASE WHEN status = 'running' THEN 'pending' ELSE status END "
                f"WHERE owner_id IN ({marks})",
                (stamp, *worker_ids),
            ).rowcount
            # A delivery cut off by a dead or stopping worker does not count as an attempt.
            db.execute(
                "UPDATE deliveries INDEXED BY deliveries_running SET owner_id = NULL, "
                "status = 'pending', updated_at = ?, attempts = MAX(attempts - 1, 0) "
                f"WHERE status = 'running' AND owner_id IN ({marks})",
                (stamp, *worker_ids),
            )
            db.execute(f"DELETE FROM workers WHERE id IN ({marks})", tuple(worker_ids))
            return released

        return await self._write(write)
