"""The PostgreSQL store's run queue: what the worker asks every time it wakes.

Each question walks a live partial index (``runs_queue``: pending and sleeping runs
by workflow and due time; ``runs_held``: running and compensating runs), so its cost
follows the work in hand, never the runs ended long ago. The predicates are spelled
as the indexes' own (:data:`~runtime.store.postgres.sql.QUEUED`, ``HELD``): the
planner uses a partial index only when the query's WHERE implies its predicate.
Questions about several workflows seek once per workflow (a ``LATERAL`` subquery per
name of the list), so each reads only the first few queued runs of its workflow,
never the whole backlog of all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.models import RunRecord
from runtime.store.postgres.core import Body, Cursor, PgCore
from runtime.store.postgres.sql import HELD, QUEUED, RUNS, columns
from runtime.store.rows import RUN_COLUMNS, run_record

_UNHELD = (
    "(r.owner_id IS NULL OR NOT EXISTS (SELECT 1 FROM workers w "
    "WHERE w.id = r.owner_id AND w.heartbeat_at >= %(stale)s))"
)
"""Held by nobody, or by a worker whose heartbeat has gone stale (or that is gone)."""

_R = columns(RUN_COLUMNS, "r")

NEXT_DUE = (
    "SELECT MIN(f.due) AS due FROM unnest(%s::text[]) AS w (name) CROSS JOIN LATERAL ("
    f"SELECT available_at AS due FROM runs WHERE {QUEUED} AND workflow = w.name "
    "ORDER BY available_at LIMIT 1) AS f"
)
"""The earliest due time of each workflow's queue (one seek each), then the earliest."""

RECOVERABLE = (
    f"SELECT {RUNS} FROM ("
    # The queue: due runs, the first few of each workflow, merged in order below.
    f"SELECT q.* FROM unnest(%(workflows)s::text[]) AS w (name) CROSS JOIN LATERAL ("
    f"SELECT {_R} FROM runs r WHERE r.{QUEUED} AND r.workflow = w.name "
    f"AND r.available_at <= %(now)s AND {_UNHELD} "
    "ORDER BY r.available_at LIMIT %(limit)s) AS q "
    "UNION ALL "
    # Runs in flight whose holder is gone: every one of them is live work.
    f"SELECT {_R} FROM runs r WHERE r.{HELD} AND r.workflow = ANY(%(workflows)s) "
    f"AND {_UNHELD}"
    ") AS found ORDER BY available_at LIMIT %(limit)s"
)
"""Due queued runs and orphaned held runs of the workflows, the earliest first."""

UNCLAIMED_UNKNOWN = (
    # The queued workflows one seek at a time (a loose index scan of runs_queue),
    # then the first due runs of each one nobody here knows: the known ones'
    # backlog is never walked.
    "WITH RECURSIVE names (workflow) AS ("
    f"(SELECT workflow FROM runs WHERE {QUEUED} ORDER BY workflow LIMIT 1) "
    "UNION ALL "
    f"SELECT (SELECT r.workflow FROM runs r WHERE r.{QUEUED} AND r.workflow > n.workflow "
    "ORDER BY r.workflow LIMIT 1) FROM names n WHERE n.workflow IS NOT NULL"
    ") "
    f"SELECT {RUNS} FROM ("
    "SELECT q.* FROM names n CROSS JOIN LATERAL ("
    f"SELECT {_R} FROM runs r WHERE r.{QUEUED} AND r.workflow = n.workflow "
    "AND r.status = 'pending' AND r.owner_id IS NULL AND r.error IS NULL "
    "AND r.available_at <= %(now)s ORDER BY r.available_at LIMIT %(limit)s) AS q "
    "WHERE n.workflow IS NOT NULL AND n.workflow <> ALL(%(known)s::text[])"
    ") AS found ORDER BY available_at LIMIT %(limit)s"
)
"""Due, unclaimed pending runs of workflows not in ``known``, the earliest first."""


class QueueMixin(PgCore):
    """``next_run_due``, ``recoverable_runs``, ``unclaimed_unknown`` (see the protocol)."""

    async def next_run_due(self, workflows: Sequence[str]) -> datetime | None:
        if not workflows:
            return None

        async def read(cur: Cursor) -> datetime | None:
            await cur.execute(NEXT_DUE, (list(workflows),))
            row = await cur.fetchone()
            assert row is not None  # an aggregate always answers one row
            due: datetime | None = row["due"]
            return due

        return await self._run(read, "next_run_due", read_only=True, single=True)

    async def recoverable_runs(
        self, workflows: Sequence[str], now: datetime, stale_before: datetime, limit: int
    ) -> list[RunRecord]:
        if not workflows:
            return []
        params = {"workflows": list(workflows), "now": now, "stale": stale_before, "limit": limit}
        rows = await self._run(
            _reading(RECOVERABLE, params), "recoverable_runs", read_only=True, single=True
        )
        with self._decoding("recoverable_runs"):
            return [run_record(row) for row in rows]

    async def unclaimed_unknown(
        self, workflows: Sequence[str], now: datetime, limit: int
    ) -> list[RunRecord]:
        params = {"known": list(workflows), "now": now, "limit": limit}
        rows = await self._run(
            _reading(UNCLAIMED_UNKNOWN, params), "unclaimed_unknown", read_only=True, single=True
        )
        with self._decoding("unclaimed_unknown"):
            return [run_record(row) for row in rows]


def _reading(sql: str, params: dict[str, Any]) -> Body[list[dict[str, Any]]]:
    """A transaction body that runs ``sql`` with ``params`` and returns every row."""

    async def read(cur: Cursor) -> list[dict[str, Any]]:
        await cur.execute(sql, params)
        return await cur.fetchall()

    return read
