"""The SQLite store's counts for ``GET /metrics``: runs by workflow and status, deliveries
by status.

Nothing is grouped or scanned. The workflows that have runs are found by a loose
index scan (the first name after the last one found, ``LIMIT 1``: one seek per
workflow), then each (workflow, status) is counted by an equality seek on
``runs_by_workflow_status``, which holds every column the count needs: the count
reads index entries, one per run of that workflow and status, never a table row.
Deliveries are counted the same way on ``deliveries_by_status``. Every statement
runs in one read transaction, so the counts are of one moment.
"""

from __future__ import annotations

import sqlite3

from runtime.models import DeliveryStatus, RunStatus
from runtime.store.sqlite_core import SqliteCore

_FIRST_WORKFLOW = "SELECT workflow FROM runs ORDER BY workflow LIMIT 1"
_NEXT_WORKFLOW = "SELECT workflow FROM runs WHERE workflow > ? ORDER BY workflow LIMIT 1"
_COUNT_RUNS = (
    "SELECT COUNT(*) FROM runs INDEXED BY runs_by_workflow_status WHERE workflow = ? AND status = ?"
)
_COUNT_DELIVERIES = (
    "SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_by_status WHERE status = ?"
)


class CountsMixin(SqliteCore):
    """``count_runs``, ``count_deliveries`` (see the protocol)."""

    async def count_runs(self) -> dict[tuple[str, RunStatus], int]:
        def read(db: sqlite3.Connection) -> dict[tuple[str, RunStatus], int]:
            counts: dict[tuple[str, RunStatus], int] = {}
            row = db.execute(_FIRST_WORKFLOW).fetchone()
            while row is not None:
                name = row[0]
                for status in RunStatus:
                    counts[name, status] = db.execute(_COUNT_RUNS, (name, status)).fetchone()[0]
                row = db.execute(_NEXT_WORKFLOW, (name,)).fetchone()
            return counts

        return await self._read(read)

    async def count_deliveries(self) -> dict[DeliveryStatus, int]:
        def read(db: sqlite3.Connection) -> dict[DeliveryStatus, int]:
            return {
                status: db.execute(_COUNT_DELIVERIES, (status,)).fetchone()[0]
                for status in DeliveryStatus
            }

        return await self._read(read)
