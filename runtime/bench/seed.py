"""Seed a database with N runs of a realistic mix, written in bulk straight to the tables.

``runtime bench --api-runs N`` needs a database the size of months of service, made in
seconds rather than hours (``runtime.bench.grow`` grows through the public API at a few
hundred runs/s). The store is opened once (its tables created and migrated as by any
start), closed, and the rows are then written with the backend's own driver in large
transactions (``executemany`` on SQLite, ``COPY`` on PostgreSQL), in the store's
stored forms: times as the store writes them (:func:`runtime.clock.to_text` text on
SQLite, ``timestamptz`` on PostgreSQL), JSON documents as text, errors as
:class:`runtime.models.StepError` documents. Every seeded id has the shape
:func:`runtime.ids.new_id` makes (``run_bench<digits>``), so cursors and look-ups by
id work as on ids the runtime made.

The mix (:data:`STATUS_MIX`, per :data:`BLOCK` consecutive runs, spread through the
block): mostly completed, some failed (half of them rolled back, their completed steps
compensated), canceled, a few live (pending, running, sleeping, paused,
compensating) and one ``compensation_failed`` per block, the rare status. Each run
belongs to one of :data:`WORKFLOWS` (drawn at random with their weights) and has that
workflow's steps, as far as its status got. Each completed run published one event,
handled by two subscribers (``audit``, ``notify``): a delivery each, done, one in 500
of ``notify``'s dead.

A database that already holds seeded runs is grown by what it lacks (the count
reads the primary key's range of seeded ids), so a file or schema can be reused.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runtime.clock import to_text
from runtime.errors import ConfigError
from runtime.models import RunStatus, StepStatus

RUN_PREFIX = "run_bench"
EVENT_PREFIX = "evt_bench"
DELIVERY_PREFIX = "dlv_bench"
DIGITS = 21
"""Digits after ``run_bench``: the 26 characters of a :func:`runtime.ids.new_id` suffix."""

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""The first seeded run's creation time; each next one is :data:`SPACING` later."""
SPACING = timedelta(seconds=20)

BATCH = 10_000
"""Runs written per transaction."""

BLOCK = 2000
"""The status mix repeats every ``BLOCK`` runs (each status at its count)."""

STATUS_MIX: dict[RunStatus, int] = {
    RunStatus.COMPLETED: 1761,
    RunStatus.FAILED: 120,
    RunStatus.CANCELED: 40,
    RunStatus.PENDING: 20,
    RunStatus.SLEEPING: 20,
    RunStatus.PAUSED: 20,
    RunStatus.RUNNING: 10,
    RunStatus.COMPENSATING: 8,
    RunStatus.COMPENSATION_FAILED: 1,
}
"""Runs of each status in every block of :data:`BLOCK`."""

RARE_STATUS = RunStatus.COMPENSATION_FAILED

WORKFLOWS: dict[str, tuple[float, int]] = {
    "order-processing": (0.40, 5),
    "send-invoice": (0.25, 3),
    "sync-inventory": (0.20, 8),
    "nightly-report": (0.10, 12),
    "refund": (0.05, 4),
}
"""Each seeded workflow: its share of the runs and its number of steps."""

SUBSCRIBERS = ("audit", "notify")
WORKER_ID = "wrk_bench000000000000000000000"
"""The owner of the seeded running and compensating runs: a worker long gone."""

_STRIDE = 1237
"""Coprime with :data:`BLOCK`: run ``i`` takes slot ``i * _STRIDE % BLOCK`` of the mix."""

_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/workflows/{wf}.py", line 42, in {step}\n'
    "    response = await client.post(url, json=payload)\n"
    '  File "/app/.venv/lib/python3.12/site-packages/httpx/_client.py", line 1859, in post\n'
    "    return await self.request(\n"
    "httpx.ReadTimeout: the upstream service did not answer within 10 s\n"
)

RUN_COLUMNS = (
    "id",
    "workflow",
    "version",
    "kind",
    "idempotency_key",
    "status",
    "input",
    "output",
    "error",
    "rollback_status",
    "control",
    "wake_at",
    "owner_id",
    "parent_run_id",
    "available_at",
    "created_at",
    "updated_at",
    "ended_at",
)
STEP_COLUMNS = (
    "run_id",
    "seq",
    "name",
    "status",
    "attempts",
    "output",
    "compensate_input",
    "error",
    "started_at",
    "ended_at",
    "completed_order",
    "compensable",
)
EVENT_COLUMNS = (
    "id",
    "name",
    "data",
    "metadata",
    "idempotency_key",
    "source_run_id",
    "occurred_at",
    "available_at",
    "fanned_out",
)


def _mix() -> list[RunStatus]:
    slots = [status for status, count in STATUS_MIX.items() for _ in range(count)]
    assert len(slots) == BLOCK
    return slots


_SLOTS = _mix()


def status_of(index: int) -> RunStatus:
    """The status of the seeded run number ``index`` (0-based)."""
    return _SLOTS[index * _STRIDE % BLOCK]


def expected_statuses(runs: int) -> Counter[RunStatus]:
    """How many of the first ``runs`` seeded runs have each status."""
    return Counter(status_of(i) for i in range(runs))


def run_id(index: int) -> str:
    return f"{RUN_PREFIX}{index:0{DIGITS}d}"


@dataclass
class Rows:
    """One batch of rows, in :data:`RUN_COLUMNS`, :data:`STEP_COLUMNS`,
    :data:`EVENT_COLUMNS` order (times as aware datetimes, JSON as text)."""

    runs: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)


def _error(step: str | None, kind: str, message: str, workflow: str) -> str:
    traceback = _TRACEBACK.format(wf=workflow.replace("-", "_"), step=step) if step else None
    return json.dumps({"step": step, "type": kind, "message": message, "traceback": traceback})


def rows(start: int, stop: int, rng: random.Random) -> Rows:
    """The rows of seeded runs ``start`` to ``stop - 1``."""
    names = list(WORKFLOWS)
    weights = [share for share, _ in WORKFLOWS.values()]
    batch = Rows()
    for index in range(start, stop):
        workflow = rng.choices(names, weights)[0]
        _run(batch, index, workflow, status_of(index), rng)
    return batch


def _run(batch: Rows, index: int, workflow: str, status: RunStatus, rng: random.Random) -> None:
    rid = run_id(index)
    created = EPOCH + index * SPACING
    total = WORKFLOWS[workflow][1]
    order = rng.randrange(10**6)
    data: dict[str, Any] = {"order_id": f"ord_{order:06d}", "customer": f"cus_{order % 9973:05d}"}
    data["amount"] = round(rng.uniform(5, 500), 2)
    data["items"] = [{"sku": f"SKU-{order % 997:03d}", "qty": 1 + order % 3}]
    input_text = json.dumps(data)
    step_time = timedelta(milliseconds=40 + rng.randrange(200))
    done = total  # steps that completed
    failing: str | None = None
    rollback = False
    if status in (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED, RunStatus.COMPENSATING):
        done = rng.randrange(total)
        failing = f"{workflow}-step-{done + 1}"
        rollback = status != RunStatus.FAILED or index % 2 == 0
    elif status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.SLEEPING):
        done = 1 + rng.randrange(total - 1)
    elif status == RunStatus.CANCELED:
        done = rng.randrange(total)
    elif status == RunStatus.PENDING:
        done = 0
    moment = created
    for seq in range(1, done + 1):
        ended = moment + step_time
        step_status = StepStatus.COMPLETED
        if rollback:
            step_status = StepStatus.COMPENSATED
            if status == RunStatus.COMPENSATION_FAILED and seq == done:
                step_status = StepStatus.COMPENSATION_FAILED
            elif status == RunStatus.COMPENSATING and seq == done:
                step_status = StepStatus.COMPENSATING
        batch.steps.append(
            (
                rid,
                seq,
                f"{workflow}-step-{seq}",
                step_status.value,
                1,
                json.dumps({"ok": True, "seq": seq}),
                input_text if seq == 1 else None,
                None,
                moment,
                ended,
                seq,
                seq == 1,
            )
        )
        moment = ended
    error: str | None = None
    if failing is not None:
        seq = done + 1
        error = _error(failing, "ReadTimeout", "the upstream service did not answer", workflow)
        batch.steps.append(
            (
                rid,
                seq,
                failing,
                StepStatus.FAILED.value,
                3,
                None,
                None,
                error,
                moment,
                moment + step_time,
                None,
                False,
            )
        )
        moment += step_time * 3
    elif status == RunStatus.CANCELED:
        error = json.dumps({"step": None, "type": "Canceled", "message": "canceled by an operator"})
    elif status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.SLEEPING):
        batch.steps.append(
            (
                rid,
                done + 1,
                f"{workflow}-step-{done + 1}",
                StepStatus.RUNNING.value if status == RunStatus.RUNNING else "completed",
                1,
                None if status == RunStatus.RUNNING else "{}",
                None,
                None,
                moment,
                None if status == RunStatus.RUNNING else moment + step_time,
                None if status == RunStatus.RUNNING else done + 1,
                False,
            )
        )
    ended_at = moment if status.terminal else None
    output = json.dumps({"order_id": data["order_id"], "status": "shipped"})
    available = created
    if status in (RunStatus.RUNNING, RunStatus.COMPENSATING):
        available = moment + timedelta(seconds=30)  # the lease a dead worker held
    elif status == RunStatus.SLEEPING:
        available = created + timedelta(days=365)
    owner = WORKER_ID if status in (RunStatus.RUNNING, RunStatus.COMPENSATING) else None
    batch.runs.append(
        (
            rid,
            workflow,
            "1",
            "composition",
            None,
            status.value,
            input_text,
            output if status == RunStatus.COMPLETED else None,
            error,
            None,
            None,
            created + timedelta(days=365) if status == RunStatus.SLEEPING else None,
            owner,
            None,
            available,
            created,
            ended_at or moment,
            ended_at,
        )
    )
    if status == RunStatus.COMPLETED:
        suffix = rid[len(RUN_PREFIX) :]
        batch.events.append(
            (
                f"{EVENT_PREFIX}{suffix}",
                f"{workflow}.completed",
                json.dumps({"run_id": rid, "order_id": data["order_id"]}),
                "{}",
                None,
                rid,
                moment,
                moment,
                True,
            )
        )


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
