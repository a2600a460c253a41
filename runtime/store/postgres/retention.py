"""The PostgreSQL store's retention: old runs, events and firings removed in small batches.

The rules are those of the SQLite store (:mod:`runtime.store.sqlite_retention`,
written down in ``docs/retention.md``), and so are the batches: each is one short
transaction of its own, reading at most ``limit`` rows of each kind after the
cursor, so a prune never holds locks for long nor builds one giant transaction.
Each walk seeks an index that ends with the key its cursor holds (``runs_ended``:
status, ended_at, id; ``events_occurred``: occurred_at, seq;
``schedule_firings_nominal``: nominal_at, schedule), since PostgreSQL has no stable
rowid to break ties with.

Other processes write meanwhile (SQLite had one writer): an operator may retry a
failed run, or redrive an event's dead delivery, between a batch's walk and its
deletes. So the deletes decide again on locked rows: a run is deleted only if its
own row, locked by the ``DELETE`` and re-read after any concurrent update (READ
COMMITTED), is still past retention; an event's deliveries are locked first and its
rule is checked again by the ``DELETE`` that follows, which sees what committed.
Only the rows actually deleted take their dependents with them and are counted.
"""

from __future__ import annotations

import time
from typing import Any

from runtime.clock import from_text, to_text
from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.pruning import (
    PRUNE_BATCH,
    Position,
    PruneBatch,
    PruneCounts,
    PruneCursor,
    PruneCutoffs,
)

FAILED = ("failed", "compensation_failed", "canceled")
"""The ended statuses an operator can still retry (DESIGN 2.1): kept until ``failed``."""
_FAILED = "(" + ", ".join(f"'{status}'" for status in FAILED) + ")"


def _removable(run: str, cutoffs: PruneCutoffs) -> str:
    """SQL true when the run aliased ``run`` may go (never NULL, so NOT works on it)."""
    terms = []
    if cutoffs.completed is not None:
        terms.append(
            f"({run}.status = 'completed' AND {run}.ended_at IS NOT NULL "
            f"AND {run}.ended_at < %(completed)s)"
        )
    if cutoffs.failed is not None:
        terms.append(
            f"({run}.status IN {_FAILED} AND {run}.ended_at IS NOT NULL "
            f"AND {run}.ended_at < %(failed)s)"
        )
    return "(" + " OR ".join(terms) + ")" if terms else "false"


def _after(time_column: str, key_column: str, position: Position | None) -> str:
    """The condition that resumes a walk after ``position`` (none on a round's first batch)."""
    if position is None:
        return ""
    return f"AND ({time_column}, {key_column}) > (%(after_at)s, %(after_key)s) "


def run_walks(cutoffs: PruneCutoffs, after: dict[str, Position]) -> dict[str, str]:
    """The statements that walk the ended runs retention may remove, by status.

    Each seeks ``runs_ended`` on one status and an age range, after its cursor, in
    index order. Its ``removable`` column is false for a child run (``parent_run_id``)
    whose parent lives on and is not removable itself.
    """
    # The parent's own rule, read by a scalar subquery (one seek of its key per run
    # walked; NULL when it is gone): PostgreSQL may answer a NOT EXISTS with a hash of
    # every run there is instead.
    orphan_or_parent_goes = (
        "(r.parent_run_id IS NULL OR COALESCE((SELECT "
        f"{_removable('p', cutoffs)} FROM runs AS p WHERE p.id = r.parent_run_id), true))"
    )
    rules = [("completed", "completed")] if cutoffs.completed is not None else []
    if cutoffs.failed is not None:
        rules += [(status, "failed") for status in FAILED]
    return {
        status: (
            f"SELECT r.id, r.ended_at, {orphan_or_parent_goes} AS removable "
            f"FROM runs AS r WHERE r.status = '{status}' "
            f"AND r.ended_at IS NOT NULL AND r.ended_at < %({cutoff})s "
            f"{_after('r.ended_at', 'r.id', after.get(status))}"
            "ORDER BY r.ended_at, r.id LIMIT %(limit)s"
        )
        for status, cutoff in rules
    }


def _event_removable(cutoffs: PruneCutoffs) -> str:
    """SQL true when the event aliased ``e`` may go.

    An event may go once it is fanned out and no delivery of it is pending or
    running; then, with a dead delivery, once every dead one is older than
    ``failed``; without, once the event is older than ``completed``.
    """
    dead_ones_old = (
        "NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_seq = e.seq "
        "AND d.status = 'dead' AND d.updated_at >= %(failed)s)"
        if cutoffs.failed is not None
        else "false"
    )
    event_old = "e.occurred_at < %(completed)s" if cutoffs.completed is not None else "false"
    return (
        "(e.fanned_out AND NOT EXISTS (SELECT 1 FROM deliveries AS d "
        "WHERE d.event_seq = e.seq AND d.status IN ('pending', 'running')) "
        "AND CASE WHEN EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_seq = e.seq "
        f"AND d.status = 'dead') THEN {dead_ones_old} ELSE {event_old} END)"
    )


def event_walk(cutoffs: PruneCutoffs, after: Position | None) -> str | None:
    """The statement that walks old events (after a cursor), saying which may go."""
    if cutoffs.completed is None and cutoffs.failed is None:
        return None
    return (
        f"SELECT e.seq, e.occurred_at, {_event_removable(cutoffs)} AS removable "
        "FROM events AS e WHERE e.occurred_at < %(upto)s "
        f"{_after('e.occurred_at', 'e.seq', after)}"
        "ORDER BY e.occurred_at, e.seq LIMIT %(limit)s"
    )


def firing_walk(after: Position | None) -> str:
    """Firings older than ``completed`` (after a cursor); all but each schedule's newest may go."""
    return (
        "SELECT f.schedule, f.nominal_at, f.nominal_at < (SELECT MAX(g.nominal_at) "
        "FROM schedule_firings AS g WHERE g.schedule = f.schedule) AS removable "
        "FROM schedule_firings AS f WHERE f.nominal_at < %(completed)s "
        f"{_after('f.nominal_at', 'f.schedule', after)}"
        "ORDER BY f.nominal_at, f.schedule LIMIT %(limit)s"
    )


_BY_RUN = {
    "steps": "steps WHERE run_id = ANY(%s)",
    "staged_events": "run_events WHERE run_id = ANY(%s)",
}
_BY_EVENT = {"deliveries": "deliveries WHERE event_seq = ANY(%s)"}
_FIRINGS = (
    "schedule_firings WHERE (schedule, nominal_at) IN "
    "(SELECT * FROM unnest(%s::text[], %s::timestamptz[]))"
)


class RetentionMixin(PgCore):
    """``prune`` (see :class:`runtime.store.base.Store`)."""

    async def prune(
        self,
        cutoffs: PruneCutoffs,
        *,
        limit: int = PRUNE_BATCH,
        after: PruneCursor | None = None,
        dry_run: bool = False,
    ) -> PruneBatch:
        start = after or PruneCursor()

        async def body(cur: Cursor) -> PruneBatch:
            return await _batch(cur, cutoffs, limit, start, dry=dry_run)

        return await self._run(body, "prune", read_only=dry_run)


async def _walk(
    cur: Cursor, sql: str, params: dict[str, Any], after: Position | None
) -> list[dict[str, Any]]:
    """The rows of the walk ``sql``, after ``after`` (whose time is ISO text)."""
    if after is not None:
        params = {**params, "after_at": from_text(after[0]), "after_key": after[1]}
    await cur.execute(sql, params)
    return await cur.fetchall()


async def _batch(
    cur: Cursor, cutoffs: PruneCutoffs, limit: int, after: PruneCursor, *, dry: bool
) -> PruneBatch:
    """One batch: walk each kind from the cursor, then remove (or count) what may go."""
    started = time.perf_counter()
    upto = max((t for t in (cutoffs.completed, cutoffs.failed) if t is not None), default=None)
    params: dict[str, Any] = {
        "completed": cutoffs.completed,
        "failed": cutoffs.failed,
        "upto": upto,
        "limit": limit,
    }
    more = False
    run_ids: list[str] = []
    positions: dict[str, Position] = {status: (at, key) for status, at, key in after.runs}
    for status, sql in run_walks(cutoffs, positions).items():
        room = limit - len(run_ids)
        if room <= 0:
            more = True
            break
        walked = await _walk(cur, sql, {**params, "limit": room}, positions.get(status))
        run_ids += [run["id"] for run in walked if run["removable"]]
        more = more or len(walked) >= room
        if walked:
            positions[status] = (to_text(walked[-1]["ended_at"]), walked[-1]["id"])
    events: list[dict[str, Any]] = []
    walk = event_walk(cutoffs, after.events)
    if walk is not None:
        events = await _walk(cur, walk, params, after.events)
    event_seqs = [event["seq"] for event in events if event["removable"]]
    firings: list[dict[str, Any]] = []
    if cutoffs.completed is not None:
        firings = await _walk(cur, firing_walk(after.firings), params, after.firings)
    gone = [firing for firing in firings if firing["removable"]]
    more = more or len(events) >= limit or len(firings) >= limit
    if dry:
        counts = await _count(cur, run_ids, event_seqs, len(gone))
    else:
        counts = await _delete(cur, cutoffs, params, run_ids, event_seqs, gone)
    cursor = PruneCursor(
        runs=tuple((status, at, key) for status, (at, key) in positions.items()),
        events=(to_text(events[-1]["occurred_at"]), events[-1]["seq"]) if events else after.events,
        firings=(
            (to_text(firings[-1]["nominal_at"]), firings[-1]["schedule"])
            if firings
            else after.firings
        ),
    )
    return PruneBatch(counts, more=more, cursor=cursor, held_s=time.perf_counter() - started)


async def _count(
    cur: Cursor, run_ids: list[str], event_seqs: list[int], firings: int
) -> PruneCounts:
    """What a batch would remove: the walked rows that may go and their dependents."""
    counts = {"runs": len(run_ids), "events": len(event_seqs), "firings": firings}
    for kinds, keys in ((_BY_RUN, run_ids), (_BY_EVENT, event_seqs)):
        for kind, where in kinds.items():
            counts[kind] = await _scalar(cur, f"SELECT COUNT(*) AS n FROM {where}", keys)
    return PruneCounts(**counts)


async def _delete(
    cur: Cursor,
    cutoffs: PruneCutoffs,
    params: dict[str, Any],
    run_ids: list[str],
    event_seqs: list[int],
    firings: list[dict[str, Any]],
) -> PruneCounts:
    """Remove what may go, deciding again on the locked rows (the module says why)."""
    counts: dict[str, int] = {}
    runs: list[str] = []
    if run_ids:
        await cur.execute(
            f"DELETE FROM runs AS r WHERE r.id = ANY(%(ids)s) AND {_removable('r', cutoffs)} "
            "RETURNING r.id",
            {**params, "ids": run_ids},
        )
        runs = [row["id"] for row in await cur.fetchall()]
    counts["runs"] = len(runs)
    for kind, where in _BY_RUN.items():
        counts[kind] = await _removed(cur, where, runs)
    seqs: list[int] = []
    if event_seqs:
        await cur.execute(
            "SELECT id FROM deliveries WHERE event_seq = ANY(%s) ORDER BY id FOR UPDATE",
            (event_seqs,),
        )
        await cur.execute(
            f"DELETE FROM events AS e WHERE e.seq = ANY(%(seqs)s) AND {_event_removable(cutoffs)} "
            "RETURNING e.seq",
            {**params, "seqs": event_seqs},
        )
        seqs = [row["seq"] for row in await cur.fetchall()]
    counts["events"] = len(seqs)
    counts["deliveries"] = await _removed(cur, _BY_EVENT["deliveries"], seqs)
    counts["firings"] = 0
    if firings:
        await cur.execute(
            f"DELETE FROM {_FIRINGS}",
            ([f["schedule"] for f in firings], [f["nominal_at"] for f in firings]),
        )
        counts["firings"] = cur.rowcount
    return PruneCounts(**counts)


async def _removed(cur: Cursor, where: str, keys: list[Any]) -> int:
    """Delete the rows of ``where`` (a table and a condition on ``keys``); how many."""
    if not keys:
        return 0
    await cur.execute(f"DELETE FROM {where}", (keys,))
    return cur.rowcount


async def _scalar(cur: Cursor, sql: str, keys: list[Any]) -> int:
    if not keys:
        return 0
    await cur.execute(sql, (keys,))
    row = await cur.fetchone()
    assert row is not None  # an aggregate always answers one row
    count: int = row["n"]
    return count
