"""The PostgreSQL store: runs and steps here; the other tables in their mixins.

See :mod:`runtime.store.postgres.core` for transactions, retries and wake-ups, and
:mod:`runtime.store.postgres.checkpoint` for the group commit of checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from runtime.clock import from_text, to_text
from runtime.config import redact
from runtime.errors import (
    DatabaseNotFoundError,
    RunNotFoundError,
    RuntimeBaseError,
    StoreArgumentError,
)
from runtime.ids import is_id
from runtime.models import RunRecord, RunStatus, StepRecord
from runtime.store.paging import page_limit, status_values
from runtime.store.postgres.bus import BusMixin
from runtime.store.postgres.checkpoint import CheckpointMixin
from runtime.store.postgres.connection import connection_kwargs, failure
from runtime.store.postgres.control import ControlMixin
from runtime.store.postgres.core import Cursor, open_pool
from runtime.store.postgres.deliveries import DeliveriesMixin
from runtime.store.postgres.queue import QueueMixin
from runtime.store.postgres.retention import RetentionMixin
from runtime.store.postgres.schedules import SchedulesMixin
from runtime.store.postgres.schema import migrate, schema_version
from runtime.store.postgres.sql import ACTIVE, RUNS, STEPS
from runtime.store.postgres.workers import WorkersMixin
from runtime.store.records import NewRun, RunPage
from runtime.store.rows import run_record, step_record


class PostgresStore(
    BusMixin,
    DeliveriesMixin,
    SchedulesMixin,
    ControlMixin,
    QueueMixin,
    RetentionMixin,
    WorkersMixin,
    CheckpointMixin,
):
    """A :class:`~runtime.store.base.Store` on a PostgreSQL database, in one schema.

    Use :meth:`open`; it creates or migrates the schema (once, however many processes
    start together) and refuses a schema written by a newer runtime.
    """

    @classmethod
    async def open(cls, conninfo: str, *, schema: str = "runtime", create: bool = True) -> Any:
        """Connect to ``conninfo`` (a ``postgresql://`` URL) and use ``schema``.

        Args:
            conninfo: the server and database, as libpq takes them.
            schema: where runtime's tables are (created when missing, if ``create``).
            create: make or migrate the schema; without it (commands that only read) a
                database with no runtime tables in ``schema`` is refused.

        Raises:
            DatabaseNotFoundError: ``create`` is false and ``schema`` holds no tables.
            SchemaVersionError: the schema was written by a newer runtime.
            StoreOperationError: the server cannot be reached, or refused the login.
        """
        where = f"{redact(conninfo)} (schema {schema})"
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo, **connection_kwargs(schema)
            ) as conn:
                if create:
                    await migrate(conn, schema, where)
                elif await schema_version(conn, schema) is None:
                    raise DatabaseNotFoundError(where, f"no runtime tables in schema {schema!r}")
        except RuntimeBaseError:
            raise
        except (psycopg.Error, OSError) as exc:
            raise failure(exc, "open", where) from exc
        pool = open_pool(conninfo, schema)
        try:
            await pool.open(wait=True)
        except Exception as exc:
            await pool.close()
            raise failure(exc, "open", where) from exc
        return cls(pool, conninfo, schema, where)

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- runs -----------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        async def write(cur: Cursor) -> tuple[dict[str, Any], bool]:
            await cur.execute(
                "INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, "
                "owner_id, parent_run_id, available_at, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"ON CONFLICT (workflow, idempotency_key) DO NOTHING RETURNING {RUNS}",
                (
                    run.id,
                    run.workflow,
                    run.version,
                    str(run.kind),
                    run.idempotency_key,
                    str(run.status),
                    run.input,
                    run.owner_id,
                    run.parent_run_id,
                    run.available_at,
                    run.created_at,
                    run.created_at,
                ),
            )
            row = await cur.fetchone()
            if row is not None:
                if run.owner_id is None:
                    await self._notify(cur, "run")
                return row, True
            await cur.execute(
                f"SELECT {RUNS} FROM runs WHERE workflow = %s AND idempotency_key = %s",
                (run.workflow, run.idempotency_key),
            )
            found = await cur.fetchone()
            assert found is not None  # the conflict was on this key
            return found, False

        row, created = await self._run(write, "create_run", run_id=run.id)
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
        version, kind = pin if pin is not None else (None, None)

        async def write(cur: Cursor) -> dict[str, Any] | None:
            # SKIP LOCKED: a run another worker is claiming (or checkpointing) right now
            # is not waited for; the claim answers "someone was faster".
            await cur.execute(
                "UPDATE runs SET owner_id = %s, updated_at = %s, "
                "error = CASE WHEN status = 'pending' THEN NULL ELSE error END, "
                "status = CASE WHEN status IN ('pending', 'sleeping') THEN 'running' "
                "ELSE status END, "
                # A run started by name alone takes the version it is first driven with.
                "version = CASE WHEN kind = 'unresolved' AND %s::text IS NOT NULL THEN %s "
                "ELSE version END, "
                "kind = CASE WHEN kind = 'unresolved' AND %s::text IS NOT NULL THEN %s "
                "ELSE kind END "
                "WHERE id = (SELECT id FROM runs WHERE id = %s "
                "AND owner_id IS NOT DISTINCT FROM %s AND status = ANY(%s) "
                f"FOR UPDATE SKIP LOCKED) RETURNING {RUNS}",
                (owner_id, now, kind, version, kind, kind, run_id, expected_owner, list(ACTIVE)),
            )
            return await cur.fetchone()

        row = await self._run(write, "claim_run", run_id=run_id)
        with self._decoding("claim_run", run_id):
            return None if row is None else run_record(row)

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
        rollback = None if rollback_status is None else rollback_status.value

        async def write(cur: Cursor) -> dict[str, Any] | None:
            await cur.execute(
                "UPDATE runs SET status = %s, owner_id = %s, updated_at = %s, "
                "error = COALESCE(%s::json, error), "
                "rollback_status = COALESCE(%s, rollback_status) "
                f"WHERE id = %s AND status = ANY(%s) RETURNING {RUNS}",
                (status.value, owner_id, now, error, rollback, run_id, [s.value for s in expected]),
            )
            row = await cur.fetchone()
            if row is not None and (status.terminal or status is RunStatus.PENDING):
                await self._notify(cur, "ended" if status.terminal else "run")
            return row

        row = await self._run(write, "transition", run_id=run_id)
        with self._decoding("transition", run_id):
            return None if row is None else run_record(row)

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        async def read(cur: Cursor) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
            await cur.execute(f"SELECT {RUNS} FROM runs WHERE id = %s", (run_id,))
            row = await cur.fetchone()
            if row is None or not steps:
                return row, []
            await cur.execute(
                f"SELECT {STEPS} FROM steps WHERE run_id = %s ORDER BY seq", (run_id,)
            )
            return row, await cur.fetchall()

        row, step_rows = await self._run(read, "get_run", run_id=run_id, read_only=steps)
        if row is None:
            raise RunNotFoundError(run_id)
        with self._decoding("get_run", run_id):
            return run_record(row, [step_record(step) for step in step_rows])

    async def find_run(self, workflow: str, idempotency_key: str) -> RunRecord | None:
        async def read(cur: Cursor) -> dict[str, Any] | None:
            await cur.execute(
                f"SELECT {RUNS} FROM runs WHERE workflow = %s AND idempotency_key = %s",
                (workflow, idempotency_key),
            )
            return await cur.fetchone()

        row = await self._run(read, "find_run")
        with self._decoding("find_run"):
            return None if row is None else run_record(row)

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
            where.append("workflow = %s")
            params.append(workflow)
        statuses = status_values(RunStatus, status)
        if statuses:
            where.append("status = ANY(%s)")
            params.append(statuses)
        if cursor is not None:
            created, _, run_id = cursor.partition("|")
            if not is_id(run_id, "run") or not _is_time(created):
                raise StoreArgumentError(f"bad cursor {cursor!r}: pass back a RunPage.next_cursor")
            where.append("(created_at, id) < (%s, %s)")
            params += [from_text(created), run_id]
        sql = f"SELECT {RUNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
        params.append(limit + 1)

        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(sql, params)
            return await cur.fetchall()

        rows = await self._run(read, "list_runs")
        with self._decoding("list_runs"):
            found = rows[:limit]
            runs = [run_record(row) for row in found]
        more = len(rows) > limit
        next_cursor = f"{to_text(found[-1]['created_at'])}|{found[-1]['id']}" if more else None
        return RunPage(runs=runs, next_cursor=next_cursor)

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(
                f"SELECT {STEPS} FROM steps WHERE run_id = %s ORDER BY seq", (run_id,)
            )
            return await cur.fetchall()

        rows = await self._run(read, "load_steps", run_id=run_id)
        with self._decoding("load_steps", run_id):
            return [step_record(row) for row in rows]


def _is_time(text: str) -> bool:
    """Whether ``text`` is a stored time (a cursor's first part)."""
    try:
        return from_text(text).tzinfo is not None
    except ValueError:
        return False
