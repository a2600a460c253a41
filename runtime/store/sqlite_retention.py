"""The SQLite store's retention: old runs, events and firings removed in small batches.

Each batch is one write transaction (so a crash leaves a run with all its steps or
none of them), run on the connection thread rather than the event loop's, since it
holds the writer for a few milliseconds. Every statement seeks (migration 0006 adds
the indexes; ``tests/store/test_retention_plans.py`` reads their query plans). The
rules themselves are written down in ``docs/retention.md``.

The status sets are written into the SQL as literals, never as parameters: SQLite
uses a partial index only when the query's WHERE spells out its predicate. Each walk
names its index (``INDEXED BY``), so a query that could no longer use it fails
instead of quietly scanning the history.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from runtime.clock import to_text
from runtime.store.pruning import (
    PRUNE_BATCH,
    Position,
    PruneBatch,
    PruneCounts,
    PruneCursor,
    PruneCutoffs,
)
from runtime.store.sqlite_core import SqliteCore
from runtime.store.sqlite_tables import Select

FAILED = ("failed", "compensation_failed", "canceled")
"""The ended statuses an operator can still retry (DESIGN 2.1): kept until ``failed``."""
_FAILED = "(" + ", ".join(f"'{status}'" for status in FAILED) + ")"

# What each walk yields of a row, by name: its position (a time and a rowid, the key
# of a pruning.Position here, which the next batch's cursor starts after), its key,
# and whether it may go.
_RUN_WALK = ("rowid", "id", "ended_at", "removable")
_EVENT_WALK = ("seq", "occurred_at", "removable")
_FIRING_WALK = ("rowid", "nominal_at", "removable")


def _removable(run: str, cutoffs: PruneCutoffs) -> str:
    """SQL true when the run aliased ``run`` may go (never NULL, so NOT works on it)."""
    terms = []
    if cutoffs.completed is not None:
        terms.append(
            f"({run}.status = 'completed' AND {run}.ended_at IS NOT NULL "
            f"AND {run}.ended_at < :completed)"
        )
    if cutoffs.failed is not None:
        terms.append(
            f"({run}.status IN {_FAILED} AND {run}.ended_at IS NOT NULL "
            f"AND {run}.ended_at < :failed)"
        )
    return "(" + " OR ".join(terms) + ")" if terms else "0"


def run_walks(cutoffs: PruneCutoffs) -> dict[str, str]:
    """The statements that walk the ended runs retention may remove, by status.

    Each seeks ``runs_ended`` on one status and an age range, after its cursor, in
    index order. Its ``removable`` column is false for a child run (``parent_run_id``)
    whose parent lives on and is not removable itself.
    """
    orphan_or_parent_goes = (
        "(r.parent_run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS p "
        f"WHERE p.id = r.parent_run_id AND NOT {_removable('p', cutoffs)}))"
    )
    rules = [("completed", "completed")] if cutoffs.completed is not None else []
    if cutoffs.failed is not None:
        rules += [(status, "failed") for status in FAILED]
    walk = Select(_RUN_WALK, table="r", sources={"removable": orphan_or_parent_goes})
    return {
        status: (
            f"SELECT {walk.sql} "
            f"FROM runs AS r INDEXED BY runs_ended WHERE r.status = '{status}' "
            f"AND r.ended_at IS NOT NULL AND r.ended_at < :{cutoff} "
            "AND (r.ended_at, r.rowid) > (:after_at, :after_key) "
            "ORDER BY r.ended_at, r.rowid LIMIT :limit"
        )
        for status, cutoff in rules
    }


def event_walk(cutoffs: PruneCutoffs) -> str | None:
    """The statement that walks old events (after a cursor), saying which may go.

    An event may go once it is fanned out and no delivery of it is pending or
    running; then, with a dead delivery, once every dead one is older than
    ``failed``; without, once the event is older than ``completed``.
    """
    if cutoffs.completed is None and cutoffs.failed is None:
        return None
    dead_ones_old = (
        "NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_seq = e.seq "
        "AND d.status = 'dead' AND d.updated_at >= :failed)"
        if cutoffs.failed is not None
        else "0"
    )
    event_old = "e.occurred_at < :completed" if cutoffs.completed is not None else "0"
    removable = (
        "e.fanned_out = 1 AND NOT EXISTS (SELECT 1 FROM deliveries AS d "
        "WHERE d.event_seq = e.seq AND d.status IN ('pending', 'running')) "
        "AND CASE WHEN EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_seq = e.seq "
        f"AND d.status = 'dead') THEN {dead_ones_old} ELSE {event_old} END"
    )
    walk = Select(_EVENT_WALK, table="e", sources={"removable": removable})
    return (
        f"SELECT {walk.sql} FROM events AS e INDEXED BY events_occurred "
        "WHERE e.occurred_at < :upto AND (e.occurred_at, e.seq) > (:after_at, :after_key) "
        "ORDER BY e.occurred_at, e.seq LIMIT :limit"
    )


_NEWER_FIRING = (
    "f.nominal_at < (SELECT MAX(g.nominal_at) FROM schedule_firings AS g "
    "WHERE g.schedule = f.schedule)"
)
FIRING_WALK = (
    f"SELECT {Select(_FIRING_WALK, table='f', sources={'removable': _NEWER_FIRING}).sql} "
    "FROM schedule_firings AS f INDEXED BY schedule_firings_nominal "
    "WHERE f.nominal_at < :completed AND (f.nominal_at, f.rowid) > (:after_at, :after_key) "
    "ORDER BY f.nominal_at, f.rowid LIMIT :limit"
)
"""Firings older than ``completed``; all but the newest of each schedule may go."""

DELETES = {
    "steps": "DELETE FROM steps WHERE run_id = ?",
    "staged_events": "DELETE FROM run_events WHERE run_id = ?",
    "runs": "DELETE FROM runs WHERE id = ?",
    "deliveries": "DELETE FROM deliveries WHERE event_seq = ?",
    "events": "DELETE FROM events WHERE seq = ?",
    "firings": "DELETE FROM schedule_firings WHERE rowid = ?",
}
"""How each kind is removed, by key: every one a primary-key or indexed seek."""

COUNTS = {
    "steps": "SELECT COUNT(*) FROM steps WHERE run_id = ?",
    "staged_events": "SELECT COUNT(*) FROM run_events WHERE run_id = ?",
    "deliveries": "SELECT COUNT(*) FROM deliveries WHERE event_seq = ?",
}
"""What a dry run counts in place of each dependent kind's deletion."""


class RetentionMixin(SqliteCore):
    """``prune`` (see :class:`runtime.store.base.Store`)."""

    async def prune(
        self,
        cutoffs: PruneCutoffs,
        *,
        limit: int = PRUNE_BATCH,
        after: PruneCursor | None = None,
        dry_run: bool = False,
    ) -> PruneBatch:
        after = after or PruneCursor()
        if dry_run:
            return await self._read(lambda db: _batch(db, cutoffs, limit, after, dry=True))
        # On the connection thread (the queued path), not the loop's fast path: a
        # batch holds the writer for milliseconds, which the event loop must not wait.
        return await self._queued(lambda db: _batch(db, cutoffs, limit, after, dry=False))


def _stamps(cutoffs: PruneCutoffs, limit: int) -> dict[str, Any]:
    completed = to_text(cutoffs.completed) if cutoffs.completed is not None else None
    failed = to_text(cutoffs.failed) if cutoffs.failed is not None else None
    upto = max((t for t in (completed, failed) if t is not None), default="")
    return {"completed": completed, "failed": failed, "upto": upto, "limit": limit}


def _walk(
    db: sqlite3.Connection,
    columns: tuple[str, ...],
    sql: str,
    params: dict[str, Any],
    after: Position | None,
) -> list[dict[str, Any]]:
    """The rows of the walk ``sql`` after the position ``after``, by the names of ``columns``."""
    at, key = after if after is not None else ("", 0)
    rows = db.execute(sql, {**params, "after_at": at, "after_key": key})
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _batch(
    db: sqlite3.Connection, cutoffs: PruneCutoffs, limit: int, after: PruneCursor, *, dry: bool
) -> PruneBatch:
    """One batch: walk each kind from the cursor, then remove (or count) what may go."""
    started = time.perf_counter()
    params = _stamps(cutoffs, limit)
    more = False
    run_ids: list[tuple[str]] = []
    positions = {status: (at, key) for status, at, key in after.runs}
    for status, sql in run_walks(cutoffs).items():
        room = limit - len(run_ids)
        if room <= 0:
            more = True
            break
        walked = _walk(db, _RUN_WALK, sql, {**params, "limit": room}, positions.get(status))
        run_ids += [(run["id"],) for run in walked if run["removable"]]
        more = more or len(walked) >= room
        if walked:
            positions[status] = (walked[-1]["ended_at"], walked[-1]["rowid"])
    events: list[dict[str, Any]] = []
    walk = event_walk(cutoffs)
    if walk is not None:
        events = _walk(db, _EVENT_WALK, walk, params, after.events)
    event_seqs = [(event["seq"],) for event in events if event["removable"]]
    firings: list[dict[str, Any]] = []
    if cutoffs.completed is not None:
        firings = _walk(db, _FIRING_WALK, FIRING_WALK, params, after.firings)
    firing_ids = [(firing["rowid"],) for firing in firings if firing["removable"]]
    more = more or len(events) >= limit or len(firings) >= limit
    rows = {
        "steps": run_ids,
        "staged_events": run_ids,
        "runs": run_ids,
        "deliveries": event_seqs,
        "events": event_seqs,
        "firings": firing_ids,
    }
    if dry:
        counts = {kind: len(found) for kind, found in rows.items()}
        for kind, sql in COUNTS.items():
            counts[kind] = sum(db.execute(sql, key).fetchone()[0] for key in rows[kind])
    else:
        counts = {
            kind: db.executemany(DELETES[kind], found).rowcount if found else 0
            for kind, found in rows.items()
        }
    cursor = PruneCursor(
        runs=tuple((status, at, key) for status, (at, key) in positions.items()),
        events=(events[-1]["occurred_at"], events[-1]["seq"]) if events else after.events,
        firings=(firings[-1]["nominal_at"], firings[-1]["rowid"]) if firings else after.firings,
    )
    held = time.perf_counter() - started
    return PruneBatch(PruneCounts(**counts), more=more, cursor=cursor, held_s=held)
