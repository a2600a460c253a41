"""The PostgreSQL store: runs and steps here; the other tables in their mixins.

See :mod:`runtime.store.postgres.core` for transactions, retries and wake-ups, and
:mod:`runtime.store.postgres.checkpoint` for the group commit of checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from runtime.clock import to_text
from runtime.config import redact, secrets_of
from runtime.errors import (
    DatabaseNotFoundError,
    RunNotFoundError,
    RuntimeBaseError,
    StoreOperationError,
)
from runtime.models import RunRecord, RunStatus, StepRecord
from runtime.store.paging import page_limit, run_cursor, status_values
from runtime.store.postgres.bus import BusMixin
from runtime.store.postgres.checkpoint import CheckpointMixin
from runtime.store.postgres.connection import connection_kwargs, failure
from runtime.store.postgres.control import ControlMixin
from runtime.store.postgres.core import Cursor, open_pool
from runtime.store.postgres.counts import CountsMixin
from runtime.store.postgres.deliveries import DeliveriesMixin
from runtime.store.postgres.queue import QueueMixin
from runtime.store.postgres.retention import RetentionMixin
from runtime.store.postgres.schedules import SchedulesMixin
from runtime.store.postgres.schema import migrate, schema_version
from runtime.store.postgres.sql import ACTIVE, RUNS, STEP_ALIASES, STEPS, columns, newest_first
from runtime.store.postgres.workers import WorkersMixin
from runtime.store.records import NewRun, RunPage
from runtime.store.rows import RUN_COLUMNS, STEP_COLUMNS, run_record, step_record


class PostgresStore(
    BusMixin,
    DeliveriesMixin,
    SchedulesMixin,
    ControlMixin,
    QueueMixin,
    RetentionMixin,
    WorkersMixin,
    CheckpointMixin,
    CountsMixin,
):
    """A :class:`~runtime.store.base.Store` on a PostgreSQL database, in one schema.

    Use :meth:`open`; it creates or migrates the schema (once, however many processes
    start together) and refuses a schema written by a newer runtime.
    """

    @classmethod
    async def open(
        cls, conninfo: str, *, schema: str = "runtime", create: bool = True
    ) -> PostgresStore:
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
            raise failure(exc, "open", where, secrets=secrets_of(conninfo)) from exc
        pool = open_pool(conninfo, schema)
        try:
            await pool.open(wait=True)
        except Exception as exc:
            await pool.close()
            raise failure(exc, "open", where, secrets=secrets_of(conninfo)) from exc
        return cls(pool, conninfo, schema, where)

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- runs -----------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        # One statement, safe to run again: the run is inserted unless its id or its
        # idempotency key is taken; either way the stored run comes back. A retry after
        # a lost connection that had committed finds the run by its own id: created.
        # A queued run wakes the other processes' workers (a held one is driven here).
        woken = (
            ""
            if run.owner_id is not None
            else " CROSS JOIN LATERAL (SELECT pg_notify(%(channel)s, %(wake)s)) AS woken"
        )
        params = {
            "id": run.id,
            "workflow": run.workflow,
            "version": run.version,
            "kind": str(run.kind),
            "key": run.idempotency_key,
            "status": str(run.status),
            "input": run.input,
            "owner": run.owner_id,
            "parent": run.parent_run_id,
            "available": run.available_at,
            "created": run.created_at,
            "channel": self.channel,
            "wake": self.wake("run"),
        }

        async def write(cur: Cursor) -> dict[str, Any]:
            await cur.execute(
                "WITH inserted AS (INSERT INTO runs (id, workflow, version, kind, "
                "idempotency_key, status, input, owner_id, parent_run_id, available_at, "
                "created_at, updated_at) VALUES (%(id)s, %(workflow)s, %(version)s, %(kind)s, "
                "%(key)s, %(status)s, %(input)s, %(owner)s, %(parent)s, %(available)s, "
                f"%(created)s, %(created)s) ON CONFLICT DO NOTHING RETURNING {RUNS}) "
                f"SELECT * FROM (SELECT {RUNS} FROM inserted{woken} UNION ALL "
                f"SELECT {RUNS} FROM runs "
                "WHERE NOT EXISTS (SELECT 1 FROM inserted) AND (id = %(id)s OR "
                "(workflow = %(workflow)s AND idempotency_key = %(key)s))) AS found "
                "ORDER BY id = %(id)s DESC LIMIT 1",
                params,
            )
            row = await cur.fetchone()
            if row is None:
                # The key's run committed after this statement's snapshot was taken:
                # the next statement sees it.
                await cur.execute(
                    f"SELECT {RUNS} FROM runs WHERE workflow = %(workflow)s "
                    "AND idempotency_key = %(key)s",
                    params,
                )
                row = await cur.fetchone()
            if row is None:
                raise StoreOperationError(
                    "create_run", self.path, "the run was neither inserted nor found", run.id
                )
            return row

        row = await self._run(write, "create_run", run_id=run.id, idempotent=True)
        with self._decoding("create_run", run.id):
            return run_record(row), row["id"] == run.id

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

        row = await self._run(write, "claim_run", run_id=run_id, single=True)
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

        # Processes waiting for the run (it ended) or for work (it is pending again)
        # are woken, in the same statement.
        wake = "ended" if status.terminal else "run" if status is RunStatus.PENDING else None
        notify = "" if wake is None else ", pg_notify(%s, %s)"
        params: tuple[Any, ...] = (
            status.value,
            owner_id,
            now,
            error,
            rollback,
            run_id,
            [s.value for s in expected],
        )
        if wake is not None:
            params += (self.channel, self.wake(wake))

        async def write(cur: Cursor) -> dict[str, Any] | None:
            await cur.execute(
                "WITH changed AS (UPDATE runs SET status = %s, owner_id = %s, updated_at = %s, "
                "error = COALESCE(%s::json, error), "
                "rollback_status = COALESCE(%s, rollback_status) "
                f"WHERE id = %s AND status = ANY(%s) RETURNING {RUNS}) "
                f"SELECT {RUNS}{notify} FROM changed",
                params,
            )
            return await cur.fetchone()

        row = await self._run(write, "transition", run_id=run_id, single=True)
        with self._decoding("transition", run_id):
            return None if row is None else run_record(row)

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        # One statement (one snapshot, one round trip): the run's row joined with each
        # of its steps, whose columns are named s_<column>.
        sql = f"SELECT {RUNS} FROM runs WHERE id = %s"
        if steps:
            sql = (
                f"SELECT {columns(RUN_COLUMNS, 'r')}, {STEP_ALIASES} FROM runs r "
                "LEFT JOIN steps s ON s.run_id = r.id WHERE r.id = %s ORDER BY s.seq"
            )

        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(sql, (run_id,))
            return await cur.fetchall()

        rows = await self._run(read, "get_run", run_id=run_id, read_only=True, single=True)
        if not rows:
            raise RunNotFoundError(run_id)
        with self._decoding("get_run", run_id):
            found = [
                step_record({name: row[f"s_{name}"] for name in STEP_COLUMNS})
                for row in rows
                if steps and row["s_seq"] is not None
            ]
            return run_record(rows[0], found)

    async def find_run(self, workflow: str, idempotency_key: str) -> RunRecord | None:
        async def read(cur: Cursor) -> dict[str, Any] | None:
            await cur.execute(
                f"SELECT {RUNS} FROM runs WHERE workflow = %s AND idempotency_key = %s",
                (workflow, idempotency_key),
            )
            return await cur.fetchone()

        row = await self._run(read, "find_run", read_only=True, single=True)
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
        if cursor is not None:
            where.append("(created_at, id) < (%s, %s)")
            params += run_cursor(cursor)
        sql, params = newest_first(
            f"SELECT {RUNS} FROM runs",
            " ORDER BY created_at DESC, id DESC LIMIT %s",
            where,
            params,
            status_values(RunStatus, status),
            limit + 1,
        )

        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(sql, params)
            return await cur.fetchall()

        rows = await self._run(read, "list_runs", read_only=True, single=True)
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

        rows = await self._run(read, "load_steps", run_id=run_id, read_only=True, single=True)
        with self._decoding("load_steps", run_id):
            return [step_record(row) for row in rows]
