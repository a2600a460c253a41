"""The SQLite store's run queue: what the worker asks every time it wakes.

Each question walks a live partial index (``runs_queue``: pending and sleeping runs
by workflow and due time; ``runs_held``: running and compensating runs), so its cost
follows the work in hand, never the runs ended long ago. Questions about several
workflows are asked per workflow (one ``SELECT`` each, joined by ``UNION ALL``): a
``MIN`` or an ordered walk over an ``IN`` list would read every queued run of those
workflows, where one per workflow reads only the first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.clock import from_text, to_text
from runtime.models import RunRecord
from runtime.store.rows import run_record
from runtime.store.sqlite_core import HELD, QUEUED, SqliteCore, in_chunks
from runtime.store.sqlite_tables import RUNS

_QUEUED_RUNS = f"SELECT {RUNS.sql} FROM runs INDEXED BY runs_queue WHERE {QUEUED}"
_UNHELD = "(owner_id IS NULL OR owner_id NOT IN (SELECT id FROM workers WHERE heartbeat_at >= ?))"
"""Held by nobody, or by a worker whose heartbeat has gone stale."""


class QueueMixin(SqliteCore):
    """``next_run_due``, ``recoverable_runs``, ``unclaimed_unknown`` (see the protocol)."""

    async def next_run_due(self, workflows: Sequence[str]) -> datetime | None:
        def read(db: sqlite3.Connection) -> list[str]:
            found = []
            for chunk in in_chunks(workflows):
                firsts = " UNION ALL ".join(
                    "SELECT MIN(available_at) AS due FROM runs INDEXED BY runs_queue "
                    f"WHERE {QUEUED} AND workflow = ?"
                    for _ in chunk
                )
                (due,) = db.execute(f"SELECT MIN(due) FROM ({firsts})", chunk).fetchone()
                if due is not None:
                    found.append(due)
            return found

        found = await self._read(read) if workflows else []
        with self._decoding("next_run_due"):
            return from_text(min(found)) if found else None

    async def recoverable_runs(
        self, workflows: Sequence[str], now: datetime, stale_before: datetime, limit: int
    ) -> list[RunRecord]:
        stale, due = to_text(stale_before), to_text(now)

        def read(db: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for chunk in in_chunks(workflows):
                # The queue: due runs, the first few of each workflow, merged in order.
                queued = " UNION ALL ".join(
                    f"{_QUEUED_RUNS} AND workflow = ? AND available_at <= ? AND {_UNHELD}"
                    for _ in chunk
                )
                params = [p for name in chunk for p in (name, due, stale)]
                rows += db.execute(
                    f"{queued} ORDER BY available_at LIMIT ?", [*params, limit]
                ).fetchall()
                # Runs in flight whose holder is gone: every one of them is live work.
                marks = ", ".join("?" * len(chunk))
                rows += db.execute(
                    f"SELECT {RUNS.sql} FROM runs INDEXED BY runs_held WHERE {HELD} "
                    f"AND workflow IN ({marks}) AND {_UNHELD}",
                    [*chunk, stale],
                ).fetchall()
            return rows

        rows = await self._read(read) if workflows else []
        with self._decoding("recoverable_runs"):
            runs = sorted(
                (run_record(row) for row in RUNS.all_named(rows)), key=lambda run: run.available_at
            )
        return runs[:limit]

    async def unclaimed_unknown(
        self, workflows: Sequence[str], now: datetime, limit: int
    ) -> list[RunRecord]:
        known = set(workflows)
        due = to_text(now)

        def read(db: sqlite3.Connection) -> list[Any]:
            # The queued workflows one seek at a time (a skip scan), then the runs of
            # each one nobody here knows: the known ones' backlog is never walked.
            rows: list[Any] = []
            after: list[str] = []
            while True:
                where = " AND workflow > ?" if after else ""
                (name,) = db.execute(
                    f"SELECT MIN(workflow) FROM runs INDEXED BY runs_queue WHERE {QUEUED}{where}",
                    after,
                ).fetchone()
                if name is None:
                    return rows
                after = [name]
                if name not in known:
                    rows += db.execute(
                        f"{_QUEUED_RUNS} AND workflow = ? AND status = 'pending' "
                        "AND owner_id IS NULL AND error IS NULL AND available_at <= ? "
                        "ORDER BY available_at LIMIT ?",
                        (name, due, limit),
                    ).fetchall()

        rows = await self._read(read)
        with self._decoding("unclaimed_unknown"):
            runs = sorted(
                (run_record(row) for row in RUNS.all_named(rows)), key=lambda run: run.available_at
            )
        return runs[:limit]
