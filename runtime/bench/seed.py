"""Seed a database with N runs of a realistic mix, written in bulk straight to the tables.

``runtime bench --api-runs N`` needs a database the size of months of service, made in
seconds rather than hours (``runtime.bench.grow`` grows through the public API at a few
hundred runs/s). The store is opened once (its tables created and migrated as by any
start), closed, and the rows of :mod:`runtime.bench.mix` are then written with the
backend's own driver in transactions of :data:`BATCH` runs (``executemany`` on SQLite,
``COPY`` on PostgreSQL), times as the store writes them (:func:`runtime.clock.to_text`
text on SQLite, ``timestamptz`` on PostgreSQL). Each seeded event gets two deliveries,
made in SQL from the events just written: ``audit`` and ``notify``, done, one in 500
of ``notify``'s dead.

A database that already holds seeded runs is grown by what it lacks (the count
reads the primary key's range of seeded ids), so a file or schema can be reused; one
holding runs the seeder did not make (a project's) is refused.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.bench.mix import (
    DELIVERY_PREFIX,
    EVENT_COLUMNS,
    EVENT_PREFIX,
    RUN_COLUMNS,
    RUN_PREFIX,
    SUBSCRIBERS,
    rows,
)
from runtime.clock import to_text
from runtime.errors import ConfigError
from runtime.store.rows import STEP_COLUMNS

BATCH = 10_000
"""Runs written per transaction."""


@dataclass(frozen=True)
class Seeded:
    """What :func:`seed` found and did."""

    runs: int
    seeded: int
    seconds: float

    @property
    def runs_per_s(self) -> float:
        return self.seeded / self.seconds if self.seconds else 0.0


Progress = Callable[[str], None]


def _batches(have: int, runs: int) -> Iterator[tuple[int, int]]:
    for start in range(have, runs, BATCH):
        yield start, min(start + BATCH, runs)


# -- SQLite -------------------------------------------------------------------


def _sqlite_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        to_text(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v for v in row
    )


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_SEEDED_RANGE = "id >= '{prefix}' AND id < '{prefix}~'"


def count_sqlite(path: str) -> int:
    """Seeded runs in the SQLite file at ``path`` (0 when it has no runs table)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchall():
            return 0
        where = _SEEDED_RANGE.format(prefix=RUN_PREFIX)
        (count,) = db.execute(f"SELECT count(*) FROM runs WHERE {where}").fetchone()
        return int(count)
    finally:
        db.close()


_FOREIGN = (
    "SELECT EXISTS (SELECT 1 FROM {table} WHERE id < '{prefix}') "
    "OR EXISTS (SELECT 1 FROM {table} WHERE id >= '{prefix}~')"
)
"""Whether runs the seeder did not make are there: two seeks at either end of its range."""


def check_sqlite(path: str) -> None:
    """Refuse a file the seeder must not write to: not SQLite, another application's
    database, or a runtime database holding runs it did not seed (a project's own).

    Raises:
        ConfigError: naming the file and what it holds.
    """
    if not Path(path).exists():
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if tables and "runs" not in tables:
                raise ConfigError(
                    f"--api-runs-db {path}: not a runtime database (no runs table); "
                    "give a new file or one an earlier --api-runs seeded"
                )
            foreign = (
                tables
                and db.execute(_FOREIGN.format(table="runs", prefix=RUN_PREFIX)).fetchone()[0]
            )
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"--api-runs-db {path}: not a SQLite database ({exc})") from None
    if foreign:
        raise ConfigError(
            f"--api-runs-db {path}: holds runs the benchmark did not seed (a project's "
            "database?); give a new file or one an earlier --api-runs seeded"
        )


def _deliveries_sql(after: int, json_cast: str = "") -> str:
    """Two deliveries for each seeded event whose ``seq`` is above ``after``
    (``json_cast`` types the error document where the column is ``json``)."""
    return (
        "INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, attempts, "
        "max_attempts, available_at, created_at, updated_at, finished_at, error) "
        f"SELECT '{DELIVERY_PREFIX}' || s.n || substr(e.id, {len(EVENT_PREFIX) + 2}), "
        "e.id, e.seq, s.id, "
        "CASE WHEN s.id = 'notify' AND e.seq % 500 = 0 THEN 'dead' ELSE 'done' END, "
        "CASE WHEN s.id = 'notify' AND e.seq % 500 = 0 THEN 3 ELSE 1 END, 3, "
        "e.occurred_at, e.occurred_at, e.occurred_at, e.occurred_at, "
        "CASE WHEN s.id = 'notify' AND e.seq % 500 = 0 THEN "
        '\'{"step": null, "type": "SMTPError", "message": "mailbox unavailable"}\''
        f"{json_cast} END "
        "FROM events e, (SELECT 'audit' AS id, '1' AS n UNION ALL SELECT 'notify', '2') AS s "
        f"WHERE e.seq > {after:d} AND e.id >= '{EVENT_PREFIX}' AND e.id < '{EVENT_PREFIX}~'"
    )


def seed_sqlite(path: str, runs: int, progress: Progress) -> Seeded:
    """Grow the SQLite file at ``path`` (its tables already made) to ``runs`` seeded runs."""
    have = count_sqlite(path)
    if have >= runs:
        progress(f"{path}: holds {have:,} seeded runs (>= {runs:,}), not grown")
        return Seeded(have, 0, 0.0)
    started = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA synchronous = OFF")
        _subscribers_sqlite(db)
        for start, stop in _batches(have, runs):
            batch = rows(start, stop, random.Random(start))
            db.execute("BEGIN IMMEDIATE")
            (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            db.executemany(_insert("runs", RUN_COLUMNS), map(_sqlite_values, batch.runs))
            db.executemany(_insert("steps", STEP_COLUMNS), map(_sqlite_values, batch.steps))
            db.executemany(_insert("events", EVENT_COLUMNS), map(_sqlite_values, batch.events))
            db.execute(_deliveries_sql(int(last)))
            db.execute("COMMIT")
            progress(f"seeded {stop:,} / {runs:,} runs")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return Seeded(runs, runs - have, time.perf_counter() - started)


def _subscribers_sqlite(db: sqlite3.Connection) -> None:
    now = to_text(datetime.now(UTC))
    for name in SUBSCRIBERS:
        db.execute(
            "INSERT INTO subscribers (id, patterns, max_attempts, active, updated_at) "
            "VALUES (?, ?, 3, 1, ?) ON CONFLICT (id) DO NOTHING",
            (name, json.dumps(["*.completed"]), now),
        )


# -- PostgreSQL ---------------------------------------------------------------


def count_postgres(conninfo: str, schema: str) -> int:
    """Seeded runs in ``schema`` (0 when it has no runs table)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as db:
        found = db.execute("SELECT to_regclass(%s)", (f"{schema}.runs",)).fetchone()
        if found is None or found[0] is None:
            return 0
        where = _SEEDED_RANGE.format(prefix=RUN_PREFIX)
        row = db.execute(f"SELECT count(*) FROM {schema}.runs WHERE {where}").fetchone()
        return int(row[0]) if row else 0


def check_postgres(conninfo: str, schema: str) -> None:
    """Refuse a schema holding runs the seeder did not make (a project's own).

    Raises:
        ConfigError: naming the schema.
    """
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as db:
        found = db.execute("SELECT to_regclass(%s)", (f"{schema}.runs",)).fetchone()
        if found is None or found[0] is None:
            return
        query = _FOREIGN.format(table=f"{schema}.runs", prefix=RUN_PREFIX)
        row = db.execute(query).fetchone()
    if row is not None and row[0]:
        raise ConfigError(
            f"schema {schema}: holds runs the benchmark did not seed (a project's "
            "schema?); name a schema of the benchmark's own with ?schema="
        )


def seed_postgres(conninfo: str, schema: str, runs: int, progress: Progress) -> Seeded:
    """Grow ``schema`` (its tables already made) to ``runs`` seeded runs, then ANALYZE it
    (as autovacuum would after such a load)."""
    import psycopg

    have = count_postgres(conninfo, schema)
    if have >= runs:
        progress(f"schema {schema}: holds {have:,} seeded runs (>= {runs:,}), not grown")
        return Seeded(have, 0, 0.0)
    started = time.perf_counter()
    with psycopg.connect(conninfo, options=f"-c search_path={schema} -c TimeZone=UTC") as db:
        db.execute("SET synchronous_commit = off")
        now = datetime.now(UTC)
        for name in SUBSCRIBERS:
            db.execute(
                "INSERT INTO subscribers (id, patterns, max_attempts, active, updated_at) "
                "VALUES (%s, %s, 3, true, %s) ON CONFLICT (id) DO NOTHING",
                (name, json.dumps(["*.completed"]), now),
            )
        db.commit()
        for start, stop in _batches(have, runs):
            batch = rows(start, stop, random.Random(start))
            row = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            last = int(row[0]) if row else 0
            with db.cursor() as cur:
                for table, columns, values in (
                    ("runs", RUN_COLUMNS, batch.runs),
                    ("steps", STEP_COLUMNS, batch.steps),
                    ("events", EVENT_COLUMNS, batch.events),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for value in values:
                            copy.write_row(value)
            db.execute(_deliveries_sql(last, "::json"))
            db.commit()
            progress(f"seeded {stop:,} / {runs:,} runs")
        db.execute("ANALYZE")
        db.commit()
    return Seeded(runs, runs - have, time.perf_counter() - started)
