"""The PostgreSQL store's workers table: registration, heartbeats, and releasing the dead's work.

Heartbeats are written with the caller's ``now``; the engine reads the database's
clock (``database_time``) for them, so every host's leases expire on one clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.postgres.sql import WORKERS
from runtime.store.records import WorkerRow
from runtime.store.rows import worker_row


class WorkersMixin(PgCore):
    """``upsert_worker``, ``heartbeat``, ``list_workers``, ``remove_workers`` (the protocol)."""

    async def upsert_worker(self, worker: WorkerRow) -> None:
        params = (
            worker.id,
            worker.host,
            worker.pid,
            worker.process_start,
            worker.started_at,
            worker.heartbeat_at,
        )

        async def write(cur: Cursor) -> None:
            await cur.execute(
                "INSERT INTO workers (id, host, pid, process_start, started_at, heartbeat_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                params,
            )

        await self._run(write, "upsert_worker", single=True, idempotent=True)

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        async def write(cur: Cursor) -> bool:
            await cur.execute(
                "UPDATE workers SET heartbeat_at = %s WHERE id = %s", (now, worker_id)
            )
            return cur.rowcount == 1

        return await self._run(write, "heartbeat", single=True, idempotent=True)

    async def list_workers(self) -> list[WorkerRow]:
        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(f"SELECT {WORKERS} FROM workers ORDER BY id")
            return await cur.fetchall()

        rows = await self._run(read, "list_workers", read_only=True, single=True)
        with self._decoding("list_workers"):
            return [worker_row(row) for row in rows]

    async def remove_workers(self, worker_ids: Sequence[str], now: datetime) -> int:
        if not worker_ids:
            return 0
        ids = list(worker_ids)

        async def write(cur: Cursor) -> int:
            # The rows are locked in id order first, as a checkpoint batch locks its runs
            # (so the two never wait on each other in a circle); a checkpoint of the
            # removed worker's committing meanwhile is waited for, and the row re-read
            # after it (READ COMMITTED), so a run it ended is not handed back.
            await cur.execute(
                "UPDATE runs SET owner_id = NULL, updated_at = %s, "
                "status = CASE WHEN status = 'running' THEN 'pending' ELSE status END "
                "WHERE id IN (SELECT id FROM runs WHERE owner_id = ANY(%s) ORDER BY id "
                "FOR UPDATE) AND owner_id = ANY(%s)",
                (now, ids, ids),
            )
            released = cur.rowcount
            # A delivery cut off by a dead or stopping worker does not count as an attempt.
            await cur.execute(
                "UPDATE deliveries SET owner_id = NULL, status = 'pending', updated_at = %s, "
                "attempts = GREATEST(attempts - 1, 0) "
                "WHERE status = 'running' AND owner_id = ANY(%s)",
                (now, ids),
            )
            await cur.execute("DELETE FROM workers WHERE id = ANY(%s)", (ids,))
            if released:
                await self._notify(cur, "run")
            return released

        return await self._run(write, "remove_workers")
