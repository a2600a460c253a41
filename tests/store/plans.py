"""Query plans: capture the SQL a store runs and fail on any that would read history.

:func:`capture` records every statement any SQLite connection opened meanwhile
executes (with its parameters bound); :func:`problems` reads a statement's
``EXPLAIN QUERY PLAN`` and says what is wrong with it, if anything:

- a ``SCAN`` of any table but the few small ones (workers, subscribers, schedules),
  except a walk of a *live* partial index (it holds only queued, held or undelivered
  rows, so it follows the work in hand) or the ordered walk of an unfiltered listing
  that stops at its ``LIMIT`` (no WHERE, no grouping, no aggregate: a first page);
- a ``SEARCH`` of a history table that is a skip scan (``ANY(...)``), or a range with
  no equality and no ``LIMIT`` to stop it;
- a temporary B-tree (a sort, a DISTINCT, a GROUP BY) anywhere in the statement.

What the plan text cannot show (a walk filtered by a condition most rows fail, a
``MIN`` over an ``IN`` list) the store avoids by construction and its docs say how.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

HISTORY = ("runs", "steps", "events", "deliveries", "run_events", "schedule_firings")
"""Tables that grow with history: no statement may scan them."""

SMALL = ("workers", "subscribers", "schedules", "worker_schedules", "runtime_schema")
"""Tables whose size follows the deployment (processes, subscribers, jobs): scanned freely."""

LIVE_INDEXES = {
    "runs_queue": "status IN ('pending', 'sleeping')",
    "runs_held": "status IN ('running', 'compensating')",
    "runs_owner": "owner_id IS NOT NULL",
    "deliveries_due": "status = 'pending'",
    "deliveries_running": "status = 'running'",
    "events_to_fan_out": "fanned_out = 0",
}
"""Partial indexes over live rows only, with the predicate that makes them so."""

_NOT_QUERIES = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|CREATE|DROP|ALTER|ANALYZE|VACUUM)\b",
    re.IGNORECASE,
)
_HISTORY_WORD = re.compile(r"\b(?:" + "|".join(HISTORY) + r")\b", re.IGNORECASE)
_TABLE_REFS = re.compile(
    r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)(?:\s+(?:AS\s+)?(?!WHERE|SET|JOIN|ON|INDEXED|ORDER"
    r"|LIMIT|GROUP|USING|VALUES|LEFT|INNER|UNION)(\w+))?",
    re.IGNORECASE,
)


@contextmanager
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement run by any SQLite connection opened inside the block."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    with monkeypatch.context() as patch:
        patch.setattr(sqlite3, "connect", traced)
        yield seen


def queries(statements: list[str]) -> list[str]:
    """The distinct statements that touch a history table (transaction control left out)."""
    found = []
    for sql in dict.fromkeys(s.strip() for s in statements):
        if _NOT_QUERIES.match(sql) or not _HISTORY_WORD.search(sql):
            continue
        found.append(sql)
    return found


def problems(db: sqlite3.Connection, sql: str) -> list[str]:
    """What is wrong with ``sql``'s plan on ``db``: an empty list when it only seeks."""
    small = _aliases(sql, SMALL)
    plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    found = []
    for line in plan:
        if "TEMP B-TREE" in line:
            found.append(f"sorts: {line}")
            continue
        scan = re.match(r"SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?", line)
        if scan is not None and scan[1] not in small and not scan[1].startswith("("):
            if scan[2] not in LIVE_INDEXES and not _walk_to_limit(sql):
                found.append(f"scans: {line}")
            continue
        search = re.match(r"SEARCH (\w+) USING .*?\((.*)\)$", line)
        if search is not None and search[1] not in small:
            if "ANY(" in search[2]:
                found.append(f"skip-scans: {line}")
            elif _unbounded_range(search[2], line, sql):
                found.append(f"walks a range with no limit: {line}")
    return found


def _unbounded_range(constraint: str, line: str, sql: str) -> bool:
    """A range with no equality, on a history index, and no LIMIT to stop the walk."""
    live = any(f"INDEX {name} " in line for name in LIVE_INDEXES)
    limited = re.search(r"\bLIMIT\b", sql, re.IGNORECASE) is not None
    equality = re.search(r"(?<![<>!])=", constraint) is not None
    return not equality and not live and not limited


def _aliases(sql: str, tables: tuple[str, ...]) -> set[str]:
    """The names (and aliases) under which ``sql`` reads any of ``tables``."""
    names = set()
    for table, alias in _TABLE_REFS.findall(sql):
        if table.lower() in tables:
            names.update(n for n in (table, alias) if n)
    return names


def _walk_to_limit(sql: str) -> bool:
    """An unfiltered listing: an ordered walk that reads no more rows than its LIMIT."""
    text = f" {' '.join(sql.upper().split())} "
    unfiltered = not any(word in text for word in (" WHERE ", " GROUP BY ", " DISTINCT ", "("))
    return unfiltered and bool(re.search(r" ORDER BY [^()]* LIMIT \d+ $", text))


def add_history(db: sqlite3.Connection, count: int) -> None:
    """Add ``count`` ended runs (three steps each), events and done deliveries, in SQL.

    What a database looks like after months of service, for ``ANALYZE`` to gather
    statistics from: the planner may choose differently with them.
    """
    db.executescript(
        f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
        INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, output,
            available_at, created_at, updated_at, ended_at)
        SELECT printf('run_old%019d', i), 'wf-' || (i % 7), '1', 'composition', NULL,
            CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'completed' END, '{{}}', '1',
            '2020-01-01T00:00:00.000000Z', printf('2020-01-01T00:00:%09.6fZ', i / 1000.0),
            '2020-01-02T00:00:00.000000Z', '2020-01-02T00:00:00.000000Z' FROM n;
        INSERT INTO steps (run_id, seq, name, status, attempts, output, started_at, ended_at)
        SELECT id, s.seq, 'step', 'completed', 1, '1', created_at, created_at
        FROM runs, (SELECT 1 AS seq UNION ALL SELECT 2 UNION ALL SELECT 3) AS s
        WHERE id LIKE 'run_old%';
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
        INSERT INTO events (id, name, data, metadata, occurred_at, available_at, fanned_out)
        SELECT printf('evt_old%019d', i), 'order.' || (i % 5), '{{}}', '{{}}',
            '2020-01-01T00:00:00.000000Z', '2020-01-01T00:00:00.000000Z', 1 FROM n;
        INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, attempts,
            max_attempts, available_at, created_at, updated_at, finished_at)
        SELECT printf('dlv_old%019d', seq), id, seq, 'audit', 'done', 1, 3, occurred_at,
            occurred_at, occurred_at, occurred_at FROM events WHERE id LIKE 'evt_old%';
        ANALYZE;
        """
    )
