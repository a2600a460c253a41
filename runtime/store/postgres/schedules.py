"""The PostgreSQL store's scheduler tables: schedules, their firings and who declares them.

Any number of schedulers, in any number of processes, may fire the same schedule at the
same nominal time. :meth:`SchedulesMixin.fire` locks the schedule's row
(``SELECT ... FOR UPDATE``) before it reads what the rule (:mod:`runtime.store.rules.schedules`)
decides on, so the first firing moves the plan past the nominal time and every later one,
which waited for the lock and then reads the moved plan, is ignored. The firing row's
primary key (schedule, nominal time) is the backstop: a second claim of the same
firing inserts nothing, and nothing else (no run) is written.

:meth:`SchedulesMixin.sync_schedules` takes a transaction-scoped advisory lock first, so
the starts of several processes reconcile the table one after another: each one's
inserts, updates and deactivations touch several rows, which in two interleaved
transactions could each wait for the other's (a deadlock).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.models import FiringOutcome, FiringRecord, ScheduleRecord
from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.postgres.sql import FIRINGS, SCHEDULE_PLAN, SCHEDULE_STATE, SCHEDULES
from runtime.store.records import NewRun, ScheduleSpec
from runtime.store.rows import firing_record, schedule_record, schedule_snapshot, stored_plan
from runtime.store.rules.schedules import Firing, Verdict, decide_firing, replans


class SchedulesMixin(PgCore):
    """Schedules and firings (see :class:`runtime.store.base.Store`)."""

    async def sync_schedules(
        self,
        specs: Sequence[ScheduleSpec],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> list[ScheduleRecord]:
        live = live_since if live_since is not None else now
        # One spec per name, the last given (as applying them one after another did).
        declared = {spec.name: spec for spec in specs}
        names = sorted(declared)

        async def write(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"runtime:{self.schema}:schedules",)
            )
            # Locked too: a firing in another process waits rather than moving a plan
            # this declaration is deciding on.
            await cur.execute(
                f"SELECT {SCHEDULE_PLAN} FROM schedules WHERE name = ANY(%s) "
                "ORDER BY name FOR UPDATE",
                (names,),
            )
            stored = {row["name"]: row for row in await cur.fetchall()}
            for name in names:
                await _sync_one(cur, declared[name], stored.get(name), now)
            # Declarations of workers that are gone (removed, or never beat again) lapse.
            await cur.execute(
                "DELETE FROM worker_schedules d WHERE NOT EXISTS "
                "(SELECT 1 FROM workers w WHERE w.id = d.worker_id)"
            )
            if worker_id is not None:
                await cur.execute("DELETE FROM worker_schedules WHERE worker_id = %s", (worker_id,))
                await cur.executemany(
                    "INSERT INTO worker_schedules (worker_id, schedule) VALUES (%s, %s)",
                    [(worker_id, name) for name in names],
                )
            # Deactivated: what this process does not declare and no other live worker
            # (a fresh heartbeat) declares either.
            await cur.execute(
                "UPDATE schedules SET active = false, updated_at = %s "
                "WHERE active AND NOT (name = ANY(%s)) AND name NOT IN "
                "(SELECT d.schedule FROM worker_schedules d JOIN workers w "
                "ON w.id = d.worker_id WHERE w.heartbeat_at >= %s "
                "AND w.id IS DISTINCT FROM %s)",
                (now, names, live, worker_id),
            )
            await cur.execute(f"SELECT {SCHEDULES} FROM schedules WHERE active ORDER BY name")
            return await cur.fetchall()

        rows = await self._run(write, "sync_schedules")
        with self._decoding("sync_schedules"):
            return [schedule_record(row) for row in rows]

    async def list_schedules(self) -> list[ScheduleRecord]:
        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(f"SELECT {SCHEDULES} FROM schedules ORDER BY name")
            return await cur.fetchall()

        rows = await self._run(read, "list_schedules", read_only=True, single=True)
        with self._decoding("list_schedules"):
            return [schedule_record(row) for row in rows]

    async def fire(
        self,
        schedule: str,
        nominal_at: datetime,
        run: NewRun | None,
        next_fire_at: datetime | None,
        missed: Sequence[datetime],
        now: datetime,
    ) -> FiringRecord | None:
        """See :meth:`runtime.store.base.Store.fire`; ``run=None`` records a miss.

        The schedule's row stays locked from the rule's read to the end of the
        transaction, so the schedule cannot change between the two and the
        ``StoreOperationError`` the protocol allows for that is never raised here.
        """

        async def write(cur: Cursor) -> FiringRecord | None:
            firing = await _decide(cur, schedule, nominal_at, run is not None, missed)
            if firing.verdict is Verdict.IGNORE:
                return None
            if firing.verdict is Verdict.EXHAUSTED:
                await _plan(cur, schedule, now, "next_fire_at = NULL")
                return None
            await cur.executemany(
                "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, "
                "recorded_at) VALUES (%s, %s, 'missed', NULL, %s) "
                "ON CONFLICT (schedule, nominal_at) DO NOTHING",
                [(schedule, at, now) for at in firing.missed],
            )
            assert firing.outcome is not None  # a firing to claim has its outcome
            started = run if firing.outcome is FiringOutcome.STARTED else None
            await cur.execute(
                "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, "
                "recorded_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (schedule, nominal_at) DO NOTHING",
                (schedule, nominal_at, firing.outcome.value, started and started.id, now),
            )
            if cur.rowcount != 1:
                # Claimed before (recorded missed by an earlier firing, or fired before a
                # re-plan moved the plan back): the plan moves on, nothing starts.
                await _plan(cur, schedule, now, "next_fire_at = %s", next_fire_at)
                return None
            if started is None:
                await _plan(cur, schedule, now, "next_fire_at = %s", next_fire_at)
                return _record(schedule, nominal_at, firing.outcome, None, now)
            await cur.execute(
                "INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, "
                "owner_id, parent_run_id, available_at, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL, %s, %s, %s)",
                (
                    started.id,
                    started.workflow,
                    started.version,
                    str(started.kind),
                    started.idempotency_key,
                    str(started.status),
                    started.input,
                    started.available_at,
                    now,
                    now,
                ),
            )
            planned = None if firing.last else next_fire_at
            await _plan(
                cur,
                schedule,
                now,
                "executions = executions + 1, last_run_id = %s, next_fire_at = %s",
                started.id,
                planned,
            )
            await self._notify(cur, "run")
            return _record(schedule, nominal_at, FiringOutcome.STARTED, started.id, now)

        return await self._run(write, "fire", run_id=run.id if run is not None else None)

    async def list_firings(self, schedule: str, limit: int = 50) -> list[FiringRecord]:
        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(
                f"SELECT {FIRINGS} FROM schedule_firings "
                "WHERE schedule = %s ORDER BY nominal_at DESC LIMIT %s",
                (schedule, limit),
            )
            return await cur.fetchall()

        rows = await self._run(read, "list_firings", read_only=True, single=True)
        with self._decoding("list_firings"):
            return [firing_record(row) for row in rows]


async def _sync_one(
    cur: Cursor, spec: ScheduleSpec, old: dict[str, Any] | None, now: datetime
) -> None:
    """Insert or update one schedule from ``old``, its row as read (locked), or ``None``."""
    if old is None:
        await cur.execute(
            "INSERT INTO schedules (name, workflow, expression, timezone, next_fire_at, "
            "executions, max_executions, overlap, catchup_window, active, last_run_id, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, 0, %s, %s, %s, true, NULL, %s)",
            (
                spec.name,
                spec.workflow,
                spec.expression,
                spec.timezone,
                spec.next_fire_at,
                spec.max_executions,
                str(spec.overlap),
                spec.catchup_window,
                now,
            ),
        )
        return
    replan = replans(stored_plan(old), spec.expression, spec.timezone, spec.max_executions)
    await cur.execute(
        "UPDATE schedules SET workflow = %s, expression = %s, timezone = %s, "
        "max_executions = %s, overlap = %s, catchup_window = %s, active = true, "
        "updated_at = %s, next_fire_at = CASE WHEN %s THEN %s ELSE next_fire_at END "
        "WHERE name = %s",
        (
            spec.workflow,
            spec.expression,
            spec.timezone,
            spec.max_executions,
            str(spec.overlap),
            spec.catchup_window,
            now,
            replan,
            spec.next_fire_at,
            spec.name,
        ),
    )


async def _decide(
    cur: Cursor, schedule: str, nominal_at: datetime, starts_run: bool, missed: Sequence[datetime]
) -> Firing:
    """Lock the schedule's row, read its snapshot and ask the firing rule."""
    await cur.execute(
        f"SELECT {SCHEDULE_STATE} FROM schedules WHERE name = %s FOR UPDATE", (schedule,)
    )
    read = await cur.fetchone()
    if read is None:
        return decide_firing(None, nominal_at, starts_run, missed)
    # The last run's status in a statement of its own, once the lock is held: it sees
    # the run of a firing that committed while this one waited (a join in the locking
    # SELECT would pair the schedule's new row with the run its old row named).
    last_status = None
    if read["last_run_id"] is not None:
        await cur.execute("SELECT status FROM runs WHERE id = %s", (read["last_run_id"],))
        last = await cur.fetchone()
        last_status = None if last is None else last["status"]  # pruned: as if none
    snapshot = schedule_snapshot({**read, "last_run_status": last_status})
    return decide_firing(snapshot, nominal_at, starts_run, missed)


async def _plan(cur: Cursor, schedule: str, now: datetime, sets: str, *params: Any) -> None:
    """Change the schedule's row, which this transaction holds locked."""
    await cur.execute(
        f"UPDATE schedules SET {sets}, updated_at = %s WHERE name = %s",
        (*params, now, schedule),
    )


def _record(
    schedule: str,
    nominal_at: datetime,
    outcome: FiringOutcome,
    run_id: str | None,
    now: datetime,
) -> FiringRecord:
    return FiringRecord(
        schedule=schedule, nominal_at=nominal_at, outcome=outcome, run_id=run_id, recorded_at=now
    )
