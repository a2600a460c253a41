"""The SQLite store: runs and steps here; workers, events, schedules in their mixins.

See :mod:`runtime.store.sqlite_batch` for how writes are batched and committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.clock import to_text
from runtime.errors import LeaseLostError, RunNotFoundError, StoreArgumentError
from runtime.models import Control, RunRecord, RunStatus, StepRecord
from runtime.store.changes import Progress, RunChange
from runtime.store.paging import page_limit, run_cursor, status_values
from runtime.store.records import NewRun, RunPage, StepWrite
from runtime.store.row_changes import row_change
from runtime.store.rows import run_record, step_record
from runtime.store.sqlite_bus import BusMixin, insert_event, publish_staged
from runtime.store.sqlite_control import ControlMixin
from runtime.store.sqlite_core import newest_first
from runtime.store.sqlite_counts import CountsMixin
from runtime.store.sqlite_open import (
    MEMORY,
    FileIdentity,
    check_identity,
    check_path,
    connect,
    open_companions,
    open_error,
    opened_file,
    prepare,
)
from runtime.store.sqlite_queue import QueueMixin
from runtime.store.sqlite_retention import RetentionMixin
from runtime.store.sqlite_schedules import SchedulesMixin
from runtime.store.sqlite_tables import LEASE, RUNS, STEPS
from runtime.store.sqlite_workers import WorkersMixin

_ACTIVE = ("pending", "running", "sleeping", "compensating")


class SqliteStore(
    BusMixin,
    SchedulesMixin,
    ControlMixin,
    QueueMixin,
    RetentionMixin,
    WorkersMixin,
    CountsMixin,
):
    """A :class:`~runtime.store.base.Store` on one SQLite file.

    Use :meth:`open`; it creates or migrates the schema and refuses a file
    written by a newer runtime.
    """

    _file: tuple[str, FileIdentity | None] = (MEMORY, None)
    """The absolute path opened, and the identity of the file it named then."""

    @classmethod
    async def open(
        cls, path: str, *, synchronous: str = "normal", fast: bool = True, create: bool = True
    ) -> SqliteStore:
        """Open the database at ``path``, creating it (and its folder) if ``create``.

        Args:
            path: the file (``:memory:`` for a private in-memory database).
            synchronous: ``normal`` (a commit survives a process crash), ``full`` or
                ``extra`` (it survives power loss too, at an fsync per commit).
            fast: commit on the event loop's thread when the lock is free (see
                :mod:`runtime.store.sqlite_core`); only with ``synchronous=normal``.
            create: make the file, its folder and the schema when missing; without it
                (commands that only read) a path with no runtime database is refused.

        Raises:
            DatabaseNotFoundError: ``create`` is false and there is no database there.
            StoreArgumentError: ``synchronous`` is none of those.
            StoreError: the file cannot be used (see :mod:`runtime.store.sqlite_open`).
        """
        if synchronous.lower() not in ("normal", "full", "extra"):
            raise StoreArgumentError(f"synchronous={synchronous!r}: use normal, full or extra")
        check_path(path, create=create)
        conn = await connect(path, create=create)
        try:
            try:
                await prepare(conn, path, synchronous, create)
                opened = opened_file(path)
            except sqlite3.Error as exc:
                raise open_error(path, exc) from exc
            fast_db, reader, checkpointer = await open_companions(path, synchronous, fast)
        except BaseException:
            await conn.close()
            raise
        store = cls(conn, path, fast_db, reader=reader, checkpointer=checkpointer)
        store._file = opened
        return store

    async def check_file(self) -> None:
        """Raise :class:`DatabaseReplacedError` if the file was deleted or replaced."""
        check_identity(*self._file)

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- runs -----------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        now = to_text(run.created_at)

        def write(db: sqlite3.Connection) -> tuple[dict[str, Any], bool]:
            cur = db.execute(
                "INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, "
                "owner_id, parent_run_id, available_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (workflow, idempotency_key) DO NOTHING",
                (
                    run.id,
                    run.workflow,
                    run.version,
                    run.kind,
                    run.idempotency_key,
                    run.status,
                    run.input,
                    run.owner_id,
                    run.parent_run_id,
                    to_text(run.available_at),
                    now,
                    now,
                ),
            )
            if cur.rowcount == 1:
                # The row just inserted, as a read would return it (the others default).
                inserted = dict.fromkeys(RUNS.names)
                inserted.update(
                    id=run.id,
                    workflow=run.workflow,
                    version=run.version,
                    kind=run.kind,
                    idempotency_key=run.idempotency_key,
                    status=run.status,
                    input=run.input,
                    owner_id=run.owner_id,
                    parent_run_id=run.parent_run_id,
                    available_at=to_text(run.available_at),
                    created_at=now,
                    updated_at=now,
                )
                return inserted, True
            row = db.execute(
                f"SELECT {RUNS.sql} FROM runs WHERE workflow = ? AND idempotency_key = ?",
                (run.workflow, run.idempotency_key),
            ).fetchone()
            return RUNS.named(row), False

        row, created = await self._write(write, run_id=run.id)
        with self._decoding("create_run", run.id):
            return run_record(row), created

    async def claim_run(
        self,
        run_id: str,
        owner_id: str,
        expected_owner: str | None,
        now: datetime,
        *,
        pin: tuple[str | None, str] | None = None,
    ) -> RunRecord | None:
        stamp = to_text(now)
        version, kind = pin if pin is not None else (None, None)

        def write(db: sqlite3.Connection) -> tuple[Any, ...] | None:
            cur = db.execute(
                "UPDATE runs SET owner_id = ?, updated_at = ?, "
                "error = CASE WHEN status = 'pending' THEN NULL ELSE error END, "
                "status = CASE WHEN status IN ('pending', 'sleeping') THEN 'running' "
                "ELSE status END, "
                # A run started by name alone takes the version it is first driven with.
                "version = CASE WHEN kind = 'unresolved' AND ? IS NOT NULL THEN ? "
                "ELSE version END, "
                "kind = CASE WHEN kind = 'unresolved' AND ? IS NOT NULL THEN ? ELSE kind END "
                "WHERE id = ? AND owner_id IS ? AND status IN (?, ?, ?, ?)",
                (owner_id, stamp, kind, version, kind, kind, run_id, expected_owner, *_ACTIVE),
            )
            if cur.rowcount != 1:
                return None
            return db.execute(  # type: ignore[no-any-return]
                f"SELECT {RUNS.sql} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()

        row = await self._write(write, run_id=run_id)
        with self._decoding("claim_run", run_id):
            return None if row is None else run_record(RUNS.named(row))

    async def transition(
        self,
        run_id: str,
        expected: Sequence[RunStatus],
        status: RunStatus,
        now: datetime,
        *,
        owner_id: str | None = None,
        error: str | None = None,
        rollback_status: RunStatus | None = None,
    ) -> RunRecord | None:
        stamp = to_text(now)
        marks = ", ".join("?" * len(expected))
        sql = (
            "UPDATE runs SET status = ?, owner_id = ?, updated_at = ?, error = COALESCE(?, error), "
            f"rollback_status = COALESCE(?, rollback_status) WHERE id = ? AND status IN ({marks})"
        )
        rollback = None if rollback_status is None else rollback_status.value
        params = (
            status.value,
            owner_id,
            stamp,
            error,
            rollback,
            run_id,
            *(s.value for s in expected),
        )

        def write(db: sqlite3.Connection) -> tuple[Any, ...] | None:
            if db.execute(sql, params).rowcount != 1:
                return None
            return db.execute(  # type: ignore[no-any-return]
                f"SELECT {RUNS.sql} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()

        row = await self._write(write, run_id=run_id)
        with self._decoding("transition", run_id):
            return None if row is None else run_record(RUNS.named(row))

    async def checkpoint(
        self,
        run_id: str,
        owner_id: str,
        steps: Sequence[StepWrite],
        change: RunChange,
        now: datetime,
    ) -> Control | None:
        progress_only = isinstance(change, Progress)
        parts = row_change(change)
        rows = [
            (
                run_id,
                s.seq,
                s.name,
                s.status.value,
                s.attempts,
                s.output,
                s.compensate_input,
                s.error,
                s.started_at and to_text(s.started_at),
                s.ended_at and to_text(s.ended_at),
                s.completed_order,
                int(s.compensable),
            )
            for s in steps
        ]
        staged = [
            (run_id, s.seq, idx, e.name, e.data, e.metadata)
            for s in steps
            for idx, e in enumerate(s.events)
        ]

        def write(db: sqlite3.Connection) -> Control | None:
            if progress_only:
                # The run row is read, not rewritten: its updated_at moves when the run
                # itself changes, not at every step (a step's own times say when it ran).
                row = db.execute(_LEASE, (run_id,)).fetchone()
                lease = None if row is None else LEASE.named(row)
                if lease is None or lease["owner_id"] != owner_id:
                    raise LeaseLostError(run_id, owner_id)
                if rows:
                    db.executemany(_UPSERT_STEP, rows)
                if staged:
                    db.executemany(_UPSERT_STAGED, staged)
                return None if lease["control"] is None else Control(lease["control"])
            control = None
            # Built only for a change of the run's row: progress (nearly every step) reads it.
            stamp = to_text(now)
            sets = ", ".join(("updated_at = ?", *parts.sets))
            held = f"UPDATE runs SET {sets} WHERE id = ? AND owner_id = ?"
            # The common case: no operator request pending. Checked in the same statement,
            # so the hot path stays one UPDATE; the rare case reads the request after.
            free = held + " AND control IS NULL"
            params: list[Any] = [stamp, *parts.params, run_id, owner_id]
            held_params = params
            if parts.unless_requested:
                held = "UPDATE runs SET updated_at = ? WHERE id = ? AND owner_id = ?"
                held_params = [stamp, run_id, owner_id]
            if db.execute(free, params).rowcount != 1:
                row = db.execute(_LEASE, (run_id,)).fetchone()
                lease = None if row is None else LEASE.named(row)
                if lease is None or lease["owner_id"] != owner_id or lease["control"] is None:
                    raise LeaseLostError(run_id, owner_id)
                # A request is pending: the step that finished is recorded all the same.
                folded = parts.unless_requested
                control = None if parts.releases and not folded else Control(lease["control"])
                db.execute(held, held_params)
                if folded:
                    # Only the steps: the run's own change (its completion) waits for the
                    # driver to obey the request first.
                    if rows:
                        db.executemany(_UPSERT_STEP, rows)
                    if staged:
                        db.executemany(_UPSERT_STAGED, staged)
                    return control
            if rows:
                db.executemany(_UPSERT_STEP, rows)
            if staged:
                db.executemany(_UPSERT_STAGED, staged)
            if parts.staged == "publish":
                publish_staged(db, run_id, now)
            elif parts.staged == "drop":
                db.execute("DELETE FROM run_events WHERE run_id = ?", (run_id,))
            for event in parts.events:
                insert_event(db, event)
            return control

        return await self._write(write, run_id=run_id)

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        def read(db: sqlite3.Connection) -> tuple[Any, list[Any]]:
            row = db.execute(f"SELECT {RUNS.sql} FROM runs WHERE id = ?", (run_id,)).fetchone()
            step_rows = (
                db.execute(
                    f"SELECT {STEPS.sql} FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
                ).fetchall()
                if row is not None and steps
                else []
            )
            return row, step_rows

        row, step_rows = await self._read(read, run_id=run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        with self._decoding("get_run", run_id):
            steps_read = [step_record(step) for step in STEPS.all_named(step_rows)]
            return run_record(RUNS.named(row), steps_read)

    async def find_run(self, workflow: str, idempotency_key: str) -> RunRecord | None:
        row = await self._read(
            lambda db: db.execute(
                f"SELECT {RUNS.sql} FROM runs WHERE workflow = ? AND idempotency_key = ?",
                (workflow, idempotency_key),
            ).fetchone()
        )
        with self._decoding("find_run"):
            return None if row is None else run_record(RUNS.named(row))

    async def list_runs(
        self,
        *,
        status: Sequence[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        page_limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        if cursor is not None:
            # Compared as stored: the cursor's text is the stored text of the time.
            created, run_id = run_cursor(cursor)
            where.append("(created_at, id) < (?, ?)")
            params += [to_text(created), run_id]
        statuses = status_values(RunStatus, status)
        sql, params = newest_first(f"SELECT {RUNS.sql} FROM runs", where, params, statuses)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        with self._decoding("list_runs"):
            found = RUNS.all_named(rows[:limit])
            runs = [run_record(row) for row in found]
        # The cursor holds the last run's stored values, as the listing's WHERE compares them.
        more = len(rows) > limit
        next_cursor = f"{found[-1]['created_at']}|{found[-1]['id']}" if more else None
        return RunPage(runs=runs, next_cursor=next_cursor)

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {STEPS.sql} FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall(),
            run_id=run_id,
        )
        with self._decoding("load_steps", run_id):
            return [step_record(row) for row in STEPS.all_named(rows)]


_UPSERT_STAGED = (
    "INSERT INTO run_events (run_id, step_seq, idx, name, data, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_seq, idx) DO UPDATE "
    "SET name = excluded.name, data = excluded.data, metadata = excluded.metadata"
)

_LEASE = f"SELECT {LEASE.sql} FROM runs WHERE id = ?"

# The columns in the order ``checkpoint`` builds each step's values in.
_UPSERT_STEP = (
    "INSERT INTO steps (run_id, seq, name, status, attempts, output, compensate_input, error, "
    "started_at, ended_at, completed_order, compensable) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, seq) DO UPDATE SET name = excluded.name, status = excluded.status, "
    "attempts = excluded.attempts, output = excluded.output, "
    "compensate_input = excluded.compensate_input, error = excluded.error, "
    "started_at = excluded.started_at, ended_at = excluded.ended_at, "
    "completed_order = excluded.completed_order, compensable = excluded.compensable"
)
