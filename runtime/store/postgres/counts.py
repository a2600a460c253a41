"""The PostgreSQL store's counts for ``GET /metrics``: runs by workflow and status,
deliveries by status.

Nothing is grouped or scanned, as on SQLite (:mod:`runtime.store.sqlite_counts`): the
workflows that have runs are found by a loose index scan (a recursive query seeking
the first name after the last one found), and each (workflow, status) is counted by
an equality seek on ``runs_by_workflow_status``, an index-only scan where the table
is vacuumed (autovacuum keeps it so). Deliveries are counted on
``deliveries_by_status``. Each is one statement, so the counts are of one moment.
"""

from __future__ import annotations

from typing import Any

from runtime.models import DeliveryStatus, RunStatus
from runtime.store.postgres.core import Cursor, PgCore

_RUN_STATUSES = tuple(RunStatus)
_DELIVERY_STATUSES = tuple(DeliveryStatus)

COUNT_RUNS = (
    "WITH RECURSIVE names (workflow) AS ("
    "(SELECT workflow FROM runs ORDER BY workflow LIMIT 1) "
    "UNION ALL "
    "SELECT (SELECT r.workflow FROM runs r WHERE r.workflow > n.workflow "
    "ORDER BY r.workflow LIMIT 1) FROM names n WHERE n.workflow IS NOT NULL"
    ") "
    "SELECT n.workflow, "
    + ", ".join(
        f"(SELECT COUNT(*) FROM runs r WHERE r.workflow = n.workflow AND r.status = '{status}') "
        f"AS {status}"
        for status in _RUN_STATUSES
    )
    + " FROM names n WHERE n.workflow IS NOT NULL"
)
"""Each workflow that has runs, with its count in each status (one column a status,
spelled as a literal so the planner weighs each status by its own statistics)."""

COUNT_DELIVERIES = "SELECT " + ", ".join(
    f"(SELECT COUNT(*) FROM deliveries WHERE status = '{status}') AS {status}"
    for status in _DELIVERY_STATUSES
)
"""The count of deliveries in each status, one column a status."""


class CountsMixin(PgCore):
    """``count_runs``, ``count_deliveries`` (see the protocol)."""

    async def count_runs(self) -> dict[tuple[str, RunStatus], int]:
        rows = await self._count(COUNT_RUNS, "count_runs")
        with self._decoding("count_runs"):
            return {
                (row["workflow"], status): row[status.value]
                for row in rows
                for status in _RUN_STATUSES
            }

    async def count_deliveries(self) -> dict[DeliveryStatus, int]:
        rows = await self._count(COUNT_DELIVERIES, "count_deliveries")
        with self._decoding("count_deliveries"):
            return {status: rows[0][status.value] for status in _DELIVERY_STATUSES}

    async def _count(self, sql: str, operation: str) -> list[dict[str, Any]]:
        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(sql)
            return await cur.fetchall()

        return await self._run(read, operation, read_only=True, single=True)
