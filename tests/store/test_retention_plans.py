"""Every statement a prune runs seeks: no scan of a history table, no temporary sort.

A scan here would make each batch (which holds the writer) as slow as the history
is long. The statements are captured as a prune runs them (batches and dry runs,
under each combination of settings) on a database with history and ``ANALYZE``
statistics, and each one's ``EXPLAIN QUERY PLAN`` is read with the checks of
``tests/store/plans.py`` (the lead's guard for the hot paths).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runtime.pruner import prune
from runtime.store.pruning import PruneCutoffs
from runtime.store.sqlite import SqliteStore
from tests.store import retention_seed as seed
from tests.store.plans import add_history, capture, problems, queries

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CUTOFFS = [
    PruneCutoffs(completed=NOW - timedelta(days=30)),
    PruneCutoffs(completed=NOW - timedelta(days=30), failed=NOW - timedelta(days=90)),
    PruneCutoffs(completed=None, failed=NOW - timedelta(days=90)),
]
EXPECTED = [
    "INDEXED BY runs_ended WHERE r.status = 'completed'",
    "INDEXED BY runs_ended WHERE r.status = 'failed'",
    "INDEXED BY runs_ended WHERE r.status = 'canceled'",
    "INDEXED BY events_occurred",
    "INDEXED BY schedule_firings_nominal",
    "DELETE FROM steps WHERE run_id",
    "DELETE FROM run_events WHERE run_id",
    "DELETE FROM runs WHERE id",
    "DELETE FROM deliveries WHERE event_seq",
    "DELETE FROM events WHERE seq",
    "DELETE FROM schedule_firings WHERE rowid",
    "SELECT COUNT(*) FROM steps WHERE run_id",
    "SELECT COUNT(*) FROM run_events WHERE run_id",
    "SELECT COUNT(*) FROM deliveries WHERE event_seq",
]
"""A piece of each kind of statement the workload must reach (so none goes unchecked)."""


def history(db: sqlite3.Connection) -> None:
    """Old history of every kind a rule looks at, then statistics for the planner."""
    for days in range(0, 200, 5):
        ended = NOW - timedelta(days=days)
        parent = seed.run(db, "completed", ended)
        seed.run(db, "completed", ended, parent=parent, staged=1)
        seed.run(db, "failed", ended)
        seed.run(db, "running", None)
        seed.event(db, ended, [("done", ended), ("dead", ended)])
        seed.event(db, ended, [("done", ended), ("pending", ended)])
        seed.event(db, ended, [])
        seed.firing(db, "nightly", ended)
    add_history(db, 3000)  # and ANALYZE


async def test_every_statement_of_a_prune_seeks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "plans.db")
    await (await SqliteStore.open(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    history(db)
    with capture(monkeypatch) as seen:
        store = await SqliteStore.open(path)
        try:
            for cutoffs in CUTOFFS:
                assert (await prune(store, cutoffs, limit=7, dry_run=True)).batches > 1
                assert (await prune(store, cutoffs, limit=7)).batches > 1
        finally:
            await store.close()
    statements = queries(seen)
    for piece in EXPECTED:
        assert any(piece in sql for sql in statements), piece
    for sql in statements:
        assert not problems(db, sql), (sql, problems(db, sql))
    db.close()


async def test_a_walk_that_cannot_use_its_index_fails_instead_of_scanning(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "plans.db")
    store = await SqliteStore.open(path)
    try:
        with sqlite3.connect(path) as db:
            db.execute("DROP INDEX events_occurred")
        with pytest.raises(Exception, match="no such index: events_occurred"):
            await prune(store, CUTOFFS[0])
    finally:
        await store.close()
