"""Pruned pages are reused: a file grown, pruned and grown again keeps its size."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runtime.pruner import Retention, prune
from runtime.store.sqlite import SqliteStore
from tests.store import retention_seed as seed

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=40)


def grow(db: sqlite3.Connection, runs: int) -> None:
    """``runs`` completed runs of 10 steps, each with an event and two done deliveries."""
    db.execute("BEGIN")
    for _ in range(runs):
        seed.run(db, "completed", OLD, steps=10)
        seed.event(db, OLD, [("done", OLD), ("done", OLD)])
    db.execute("COMMIT")


def pages(db: sqlite3.Connection) -> tuple[int, int]:
    """The file's pages and, of them, the free ones."""
    return (
        db.execute("PRAGMA page_count").fetchone()[0],
        db.execute("PRAGMA freelist_count").fetchone()[0],
    )


async def test_a_database_grown_pruned_and_grown_again_does_not_grow(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "pages.db"))
    db = sqlite3.connect(store.path, isolation_level=None)
    try:
        grow(db, 1500)
        grown, _ = pages(db)

        done = await prune(store, Retention.of("30d").cutoffs(NOW))
        assert done.counts.runs == 1500 and done.counts.events == 1500
        after_prune, free = pages(db)
        assert after_prune == grown  # the file keeps its pages ...
        assert free > grown * 0.8  # ... on the freelist

        grow(db, 1500)
        regrown, free = pages(db)
        assert regrown <= grown * 1.05, (grown, regrown)  # new rows took the free pages
        assert free < grown * 0.2
    finally:
        db.close()
        await store.close()
