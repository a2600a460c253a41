"""Every statement of a prune seeks: its query plan scans no history table and sorts nothing.

A scan here would make each batch (which holds the writer) as slow as the history
is long. SQLite uses a partial index only when the WHERE spells out its predicate,
so a rewording of a query can silently turn a seek into a scan: this test catches it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runtime.store.base import PruneCutoffs
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_retention import (
    DELETES,
    FIRING_QUERY,
    _params,
    count_queries,
    event_query,
    run_queries,
)
from tests.store import retention_seed as seed

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CUTOFFS = {
    "retention": PruneCutoffs(completed=NOW - timedelta(days=30)),
    "both": PruneCutoffs(completed=NOW - timedelta(days=30), failed=NOW - timedelta(days=90)),
    "failed only": PruneCutoffs(completed=None, failed=NOW - timedelta(days=90)),
}
HISTORY = {"runs", "steps", "events", "deliveries", "run_events", "schedule_firings"}
ALIASES = dict(
    r="runs", p="runs", e="events", d="deliveries", f="schedule_firings", g="schedule_firings"
)
"""The tables behind the aliases the prune statements use."""


def statements(cutoffs: PruneCutoffs) -> list[str]:
    """Every statement a prune with ``cutoffs`` runs, batch or dry run."""
    found = [f"{query} LIMIT 100" for query in run_queries(cutoffs)]
    walk = event_query(cutoffs)
    found += [walk] if walk is not None else []
    found += [f"{FIRING_QUERY} LIMIT 100"] if cutoffs.completed is not None else []
    found += list(DELETES.values())
    found += [query for queries in count_queries(cutoffs).values() for query in queries]
    return found


def problems(plan: list[str]) -> list[str]:
    """The lines of a plan that scan a history table or build a temp B-tree."""
    bad = []
    for line in plan:
        scanned = re.match(r"SCAN (\w+)", line)
        if scanned and ALIASES.get(scanned[1], scanned[1]) in HISTORY:
            bad.append(line)
        if "TEMP B-TREE" in line:
            bad.append(line)
    return bad


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[sqlite3.Connection]:
    """A migrated database with some history (so the planner sees real tables)."""
    path = str(tmp_path / "plans.db")
    await (await SqliteStore.open(path)).close()
    conn = sqlite3.connect(path, isolation_level=None)
    for days in range(0, 200, 5):
        ended = NOW - timedelta(days=days)
        for status in ("completed", "failed", "running"):
            seed.run(conn, status, None if status == "running" else ended, steps=3, staged=1)
        seed.event(conn, ended, [("done", ended), ("dead", ended), ("pending", ended)])
        seed.firing(conn, "nightly", ended)
    yield conn
    conn.close()


@pytest.mark.parametrize("name", list(CUTOFFS))
async def test_every_prune_statement_seeks(db: sqlite3.Connection, name: str) -> None:
    cutoffs = CUTOFFS[name]
    params = _params(cutoffs, 100, ("2026-01-01T00:00:00.000000+00:00", 7))
    checked = 0
    for sql in statements(cutoffs):
        bound = (1,) * sql.count("?") if "?" in sql else {**params, "limit": 100}
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", bound)]
        assert plan, sql
        assert not problems(plan), (sql, plan)
        checked += 1
    assert checked >= len(DELETES) + 3


async def test_the_check_catches_a_scan_and_a_sort(db: sqlite3.Connection) -> None:
    scan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN SELECT * FROM runs AS r")]
    sort = [row[3] for row in db.execute("EXPLAIN QUERY PLAN SELECT * FROM steps ORDER BY name")]
    assert problems(scan) and problems(sort)
