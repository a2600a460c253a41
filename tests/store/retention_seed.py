"""Rows for retention tests, written straight into a runtime database (SQL, no engine).

Retention reads ages and statuses only, so the tests set them directly: a run that
ended 40 days ago, an event with a dead delivery, a firing from last year.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from runtime.clock import to_text
from runtime.ids import new_id


def run(
    db: sqlite3.Connection,
    status: str,
    ended_at: datetime | None,
    *,
    created_at: datetime | None = None,
    steps: int = 3,
    staged: int = 0,
    parent: str | None = None,
    key: str | None = None,
    workflow: str = "wf",
) -> str:
    """A run with ``steps`` completed steps and ``staged`` staged events; its id."""
    run_id = new_id("run")
    created = to_text(created_at or ended_at or datetime.fromisoformat("2026-01-01T00:00:00+00:00"))
    ended = to_text(ended_at) if ended_at is not None else None
    db.execute(
        "INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, "
        "parent_run_id, available_at, created_at, updated_at, ended_at) "
        "VALUES (?, ?, NULL, 'composition', ?, ?, 'null', ?, ?, ?, ?, ?)",
        (run_id, workflow, key, status, parent, created, created, ended or created, ended),
    )
    db.executemany(
        "INSERT INTO steps (run_id, seq, name, status, attempts, output) "
        "VALUES (?, ?, ?, 'completed', 1, '{\"ok\": true}')",
        [(run_id, seq, f"step-{seq}") for seq in range(steps)],
    )
    db.executemany(
        "INSERT INTO run_events (run_id, step_seq, idx, name, data, metadata) "
        "VALUES (?, 0, ?, 'order.placed', 'null', '{}')",
        [(run_id, idx) for idx in range(staged)],
    )
    return run_id


def event(
    db: sqlite3.Connection,
    occurred_at: datetime,
    deliveries: Sequence[tuple[str, datetime]] = (),
    *,
    fanned_out: bool = True,
    key: str | None = None,
) -> int:
    """An event with a delivery per (status, updated_at); its seq."""
    stamp = to_text(occurred_at)
    seq = db.execute(
        "INSERT INTO events (id, name, data, metadata, idempotency_key, occurred_at, "
        "available_at, fanned_out) VALUES (?, 'order.placed', 'null', '{}', ?, ?, ?, ?)",
        (new_id("evt"), key, stamp, stamp, int(fanned_out)),
    ).lastrowid
    assert seq is not None
    event_id = db.execute("SELECT id FROM events WHERE seq = ?", (seq,)).fetchone()[0]
    for index, (status, updated_at) in enumerate(deliveries):
        db.execute(
            "INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, "
            "max_attempts, available_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 3, ?, "
            "?, ?)",
            (
                new_id("dlv"),
                event_id,
                seq,
                f"sub-{index}",
                status,
                stamp,
                stamp,
                to_text(updated_at),
            ),
        )
    return seq


def firing(db: sqlite3.Connection, schedule: str, nominal_at: datetime) -> None:
    """A ``started`` firing of ``schedule`` for ``nominal_at``."""
    stamp = to_text(nominal_at)
    db.execute(
        "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, recorded_at) "
        "VALUES (?, ?, 'started', NULL, ?)",
        (schedule, stamp, stamp),
    )


def count(db: sqlite3.Connection, table: str) -> int:
    """Rows in ``table``."""
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def orphans(db: sqlite3.Connection) -> dict[str, int]:
    """Rows whose parent row is gone: steps and staged events without a run, deliveries
    without an event. A prune must leave none."""
    return {
        "steps": db.execute(
            "SELECT COUNT(*) FROM steps WHERE run_id NOT IN (SELECT id FROM runs)"
        ).fetchone()[0],
        "staged_events": db.execute(
            "SELECT COUNT(*) FROM run_events WHERE run_id NOT IN (SELECT id FROM runs)"
        ).fetchone()[0],
        "deliveries": db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE event_seq NOT IN (SELECT seq FROM events)"
        ).fetchone()[0],
    }
