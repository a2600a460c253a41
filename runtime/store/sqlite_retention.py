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
from runtime.store.base import PRUNE_BATCH, PruneBatch, PruneCounts, PruneCutoffs
from runtime.store.sqlite_core import SqliteCore

_FAILED = "('failed', 'compensation_failed', 'canceled')"
"""The ended statuses an operator can still retry (DESIGN 2.1): kept until ``failed``."""


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


def run_queries(cutoffs: PruneCutoffs) -> list[str]:
    """The statements that pick the runs retention removes: one per enabled rule.

    Each seeks ``runs_ended`` on one status range; a child run (``parent_run_id``) is
    picked only when its parent is gone or removable too.
    """
    orphan_or_parent_goes = (
        "(r.parent_run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS p "
        f"WHERE p.id = r.parent_run_id AND NOT {_removable('p', cutoffs)}))"
    )
    queries = []
    if cutoffs.completed is not None:
        queries.append(
            "SELECT r.id FROM runs AS r INDEXED BY runs_ended WHERE r.status = 'completed' "
            "AND r.ended_at IS NOT NULL AND r.ended_at < :completed "
            f"AND {orphan_or_parent_goes}"
        )
    if cutoffs.failed is not None:
        queries.append(
            f"SELECT r.id FROM runs AS r INDEXED BY runs_ended WHERE r.status IN {_FAILED} "
            "AND r.ended_at IS NOT NULL AND r.ended_at < :failed "
            f"AND {orphan_or_parent_goes}"
        )
    return queries


def event_query(cutoffs: PruneCutoffs) -> str | None:
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
    return (
        f"SELECT e.seq, e.occurred_at, {removable} AS removable "
        "FROM events AS e INDEXED BY events_occurred "
        "WHERE e.occurred_at < :upto AND (e.occurred_at, e.seq) > (:after_at, :after_seq) "
        "ORDER BY e.occurred_at, e.seq LIMIT :limit"
    )


FIRING_QUERY = (
    "SELECT f.rowid FROM schedule_firings AS f INDEXED BY schedule_firings_nominal "
    "WHERE f.nominal_at < :completed "
    "AND f.nominal_at < (SELECT MAX(g.nominal_at) FROM schedule_firings AS g "
    "WHERE g.schedule = f.schedule)"
)
"""Firings older than ``completed``, except the newest of each schedule."""

DELETES = {
    "steps": "DELETE FROM steps WHERE run_id = ?",
    "staged_events": "DELETE FROM run_events WHERE run_id = ?",
    "runs": "DELETE FROM runs WHERE id = ?",
    "deliveries": "DELETE FROM deliveries WHERE event_seq = ?",
    "events": "DELETE FROM events WHERE seq = ?",
    "firings": "DELETE FROM schedule_firings WHERE rowid = ?",
}
"""How each kind is removed, by key: every one a primary-key or indexed seek."""


def _params(cutoffs: PruneCutoffs, limit: int, after: tuple[str, int] | None) -> dict[str, Any]:
    completed = to_text(cutoffs.completed) if cutoffs.completed is not None else None
    failed = to_text(cutoffs.failed) if cutoffs.failed is not None else None
    after_at, after_seq = after if after is not None else ("", 0)
    return {
        "completed": completed,
        "failed": failed,
        "upto": max(t for t in (completed, failed, "") if t is not None),
        "limit": limit,
        "after_at": after_at,
        "after_seq": after_seq,
    }


class RetentionMixin(SqliteCore):
    """``prune`` (see :class:`runtime.store.base.Store`)."""

    async def prune(
        self,
        cutoffs: PruneCutoffs,
        *,
        limit: int = PRUNE_BATCH,
        after: tuple[str, int] | None = None,
        dry_run: bool = False,
    ) -> PruneBatch:
        params = _params(cutoffs, limit, after)
        if dry_run:
            counts = await self._read(lambda db: _count(db, cutoffs, params))
            return PruneBatch(counts, more=False)
        # On the connection thread (the queued path), not the loop's fast path: a
        # batch holds the writer for milliseconds, which the event loop must not wait.
        return await self._queued(lambda db: _prune_batch(db, cutoffs, params))


def _prune_batch(
    db: sqlite3.Connection, cutoffs: PruneCutoffs, params: dict[str, Any]
) -> PruneBatch:
    """One batch, inside the caller's write transaction."""
    started = time.perf_counter()
    limit = params["limit"]
    run_ids: list[tuple[str]] = []
    for query in run_queries(cutoffs):
        room = limit - len(run_ids)
        if room > 0:
            run_ids += db.execute(f"{query} LIMIT {room}", params).fetchall()
    walked: list[tuple[int, str, int]] = []
    walk = event_query(cutoffs)
    if walk is not None:
        walked = db.execute(walk, params).fetchall()
    event_seqs = [(seq,) for seq, _, removable in walked if removable]
    firings: list[tuple[int]] = []
    if cutoffs.completed is not None:
        firings = db.execute(f"{FIRING_QUERY} LIMIT {limit}", params).fetchall()
    removed = {
        kind: db.executemany(DELETES[kind], rows).rowcount if rows else 0
        for kind, rows in (
            ("steps", run_ids),
            ("staged_events", run_ids),
            ("runs", run_ids),
            ("deliveries", event_seqs),
            ("events", event_seqs),
            ("firings", firings),
        )
    }
    more = len(run_ids) >= limit or len(walked) >= limit or len(firings) >= limit
    cursor = (walked[-1][1], walked[-1][0]) if walked else None
    held = time.perf_counter() - started
    return PruneBatch(PruneCounts(**removed), more=more, cursor=cursor, held_s=held)


def count_queries(cutoffs: PruneCutoffs) -> dict[str, list[str]]:
    """The statements of a dry run, by kind: each counts what the rules would remove now."""
    counts: dict[str, list[str]] = {kind: [] for kind in DELETES}
    for query in run_queries(cutoffs):
        counts["runs"].append(f"SELECT COUNT(*) FROM ({query})")
        counts["steps"].append(f"SELECT COUNT(*) FROM steps WHERE run_id IN ({query})")
        counts["staged_events"].append(f"SELECT COUNT(*) FROM run_events WHERE run_id IN ({query})")
    walk = event_query(cutoffs)
    if walk is not None:
        removable = f"SELECT w.seq FROM ({walk}) AS w WHERE w.removable"
        counts["events"].append(f"SELECT COUNT(*) FROM ({removable})")
        counts["deliveries"].append(
            f"SELECT COUNT(*) FROM deliveries WHERE event_seq IN ({removable})"
        )
    if cutoffs.completed is not None:
        counts["firings"].append(f"SELECT COUNT(*) FROM ({FIRING_QUERY})")
    return counts


def _count(db: sqlite3.Connection, cutoffs: PruneCutoffs, params: dict[str, Any]) -> PruneCounts:
    """What the rules would remove now, counted in one read (``prune(dry_run=True)``)."""
    every = {**params, "limit": -1}  # the event walk, to its end
    counts = {
        kind: sum(db.execute(query, every).fetchone()[0] for query in queries)
        for kind, queries in count_queries(cutoffs).items()
    }
    return PruneCounts(**counts)
