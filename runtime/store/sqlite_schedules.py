"""The SQLite store's scheduler tables: schedules and their firings."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.clock import to_text
from runtime.errors import StoreOperationError
from runtime.models import FiringOutcome, FiringRecord, ScheduleRecord
from runtime.store.records import NewRun, ScheduleSpec
from runtime.store.rows import firing_record, schedule_record, schedule_snapshot, stored_plan
from runtime.store.rules.schedules import Verdict, decide_firing, replans
from runtime.store.sqlite_core import SqliteCore
from runtime.store.sqlite_tables import FIRINGS, SCHEDULE_PLAN, SCHEDULE_SNAPSHOT, SCHEDULES

SYNC_TRIES = 3
"""How many times ``sync_schedules`` decides a schedule again when its row changed meanwhile."""


class SchedulesMixin(SqliteCore):
    """Schedules and firings (see :class:`runtime.store.base.Store`)."""

    async def sync_schedules(
        self,
        specs: Sequence[ScheduleSpec],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> list[ScheduleRecord]:
        stamp = to_text(now)
        live = to_text(live_since if live_since is not None else now)
        # One spec per name, the last given (as applying them one after another did).
        specs = list({spec.name: spec for spec in specs}.values())

        def sync_one(db: sqlite3.Connection, spec: ScheduleSpec, old: Any) -> bool:
            """Insert or update one schedule from ``old`` (its row as read, or ``None``);
            False when the row no longer holds what was read."""
            planned = to_text(spec.next_fire_at) if spec.next_fire_at else None
            if old is None:
                db.execute(
                    "INSERT INTO schedules (name, workflow, expression, timezone, "
                    "next_fire_at, executions, max_executions, overlap, catchup_window, "
                    "active, last_run_id, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, 1, NULL, ?)",
                    (
                        spec.name,
                        spec.workflow,
                        spec.expression,
                        spec.timezone,
                        planned,
                        spec.max_executions,
                        spec.overlap,
                        spec.catchup_window,
                        stamp,
                    ),
                )
                return True
            replan = replans(stored_plan(old), spec.expression, spec.timezone, spec.max_executions)
            changed = db.execute(
                "UPDATE schedules SET workflow = ?, expression = ?, timezone = ?, "
                "max_executions = ?, overlap = ?, catchup_window = ?, active = 1, "
                "updated_at = ?, next_fire_at = CASE WHEN ? THEN ? ELSE next_fire_at END "
                "WHERE name = ? AND expression = ? AND timezone = ? AND active = ? "
                "AND next_fire_at IS ? AND executions = ?",
                (
                    spec.workflow,
                    spec.expression,
                    spec.timezone,
                    spec.max_executions,
                    spec.overlap,
                    spec.catchup_window,
                    stamp,
                    replan,
                    planned,
                    old["name"],
                    old["expression"],
                    old["timezone"],
                    old["active"],
                    old["next_fire_at"],
                    old["executions"],
                ),
            ).rowcount
            return bool(changed == 1)

        def write(db: sqlite3.Connection) -> list[Any]:
            stored = {
                row["name"]: row
                for row in SCHEDULE_PLAN.all_named(
                    db.execute(f"SELECT {SCHEDULE_PLAN.sql} FROM schedules")
                )
            }
            for spec in specs:
                old = stored.get(spec.name)
                for _ in range(SYNC_TRIES):
                    if sync_one(db, spec, old):
                        break
                    # The row changed since it was read (another process fired it): read
                    # it again and decide again, as the state table's writes do.
                    row = db.execute(
                        f"SELECT {SCHEDULE_PLAN.sql} FROM schedules WHERE name = ?", (spec.name,)
                    ).fetchone()
                    old = None if row is None else SCHEDULE_PLAN.named(row)
                else:
                    raise self._changed("sync_schedules", spec.name)
            # Declarations of workers that are gone (removed, or never beat again) lapse.
            db.execute(
                "DELETE FROM worker_schedules WHERE worker_id NOT IN (SELECT id FROM workers)"
            )
            if worker_id is not None:
                db.execute("DELETE FROM worker_schedules WHERE worker_id = ?", (worker_id,))
                db.executemany(
                    "INSERT INTO worker_schedules (worker_id, schedule) VALUES (?, ?)",
                    [(worker_id, spec.name) for spec in specs],
                )
            # Deactivated: what this process does not declare and no other live worker
            # (a fresh heartbeat) declares either.
            declared = [spec.name for spec in specs]
            marks = ", ".join("?" * len(declared))
            not_here = f"AND name NOT IN ({marks}) " if declared else ""
            db.execute(
                f"UPDATE schedules SET active = 0, updated_at = ? WHERE active = 1 {not_here}"
                "AND name NOT IN (SELECT d.schedule FROM worker_schedules d "
                "JOIN workers w ON w.id = d.worker_id WHERE w.heartbeat_at >= ? "
                "AND w.id IS NOT ?)",
                (stamp, *declared, live, worker_id),
            )
            return db.execute(
                f"SELECT {SCHEDULES.sql} FROM schedules WHERE active = 1 ORDER BY name"
            ).fetchall()

        rows = await self._write(write)
        with self._decoding("sync_schedules"):
            return [schedule_record(row) for row in SCHEDULES.all_named(rows)]

    async def list_schedules(self) -> list[ScheduleRecord]:
        rows = await self._read(
            lambda db: db.execute(f"SELECT {SCHEDULES.sql} FROM schedules ORDER BY name").fetchall()
        )
        with self._decoding("list_schedules"):
            return [schedule_record(row) for row in SCHEDULES.all_named(rows)]

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

        With ``run=None`` (every due firing was older than the catch-up window)
        ``nominal_at`` is recorded ``missed`` like the others and the plan moves on.
        """
        stamp, nominal = to_text(now), to_text(nominal_at)
        planned = to_text(next_fire_at) if next_fire_at else None

        def record(outcome: FiringOutcome, run_id: str | None) -> FiringRecord:
            return FiringRecord(
                schedule=schedule,
                nominal_at=nominal_at,
                outcome=outcome,
                run_id=run_id,
                recorded_at=now,
            )

        def write(db: sqlite3.Connection) -> FiringRecord | None:
            row = db.execute(
                f"SELECT {SCHEDULE_SNAPSHOT.sql} FROM schedules s "
                "LEFT JOIN runs r ON r.id = s.last_run_id WHERE s.name = ?",
                (schedule,),
            ).fetchone()
            read = None if row is None else SCHEDULE_SNAPSHOT.named(row)
            snapshot = None if read is None else schedule_snapshot(read)
            firing = decide_firing(snapshot, nominal_at, run is not None, missed)
            if read is None or firing.verdict is Verdict.IGNORE:
                return None
            # The schedule's row changes only while it holds what the rule read.
            held = (schedule, read["executions"], read["next_fire_at"])

            def update(sets: str, *params: Any) -> bool:
                """Change the schedule's row if it still holds what the rule read."""
                return (
                    db.execute(
                        f"UPDATE schedules SET {sets}, updated_at = ? "
                        "WHERE name = ? AND executions = ? AND next_fire_at IS ?",
                        (*params, stamp, *held),
                    ).rowcount
                    == 1
                )

            if firing.verdict is Verdict.EXHAUSTED:
                update("next_fire_at = NULL")  # unless another process changed it meanwhile
                return None
            db.executemany(
                "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, "
                "recorded_at) VALUES (?, ?, 'missed', NULL, ?) "
                "ON CONFLICT (schedule, nominal_at) DO NOTHING",
                [(schedule, to_text(m), stamp) for m in firing.missed],
            )
            assert firing.outcome is not None  # a firing to claim has its outcome
            started = run if firing.outcome is FiringOutcome.STARTED else None
            claimed = db.execute(
                "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, "
                "recorded_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (schedule, nominal_at) DO NOTHING",
                (schedule, nominal, firing.outcome.value, started and started.id, stamp),
            ).rowcount
            if claimed != 1:
                # Fired elsewhere: the plan moves on here, unless the process that fired it
                # moved it already (then there is nothing left to do, and no error).
                update("next_fire_at = ?", planned)
                return None
            if started is None:
                if not update("next_fire_at = ?", planned):
                    raise self._changed("fire", schedule)
                return record(firing.outcome, None)
            db.execute(
                "INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, "
                "owner_id, parent_run_id, available_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
                (
                    started.id,
                    started.workflow,
                    started.version,
                    started.kind,
                    started.idempotency_key,
                    started.status.value,
                    started.input,
                    to_text(started.available_at),
                    stamp,
                    stamp,
                ),
            )
            counted = update(
                "executions = executions + 1, last_run_id = ?, next_fire_at = ?",
                started.id,
                None if firing.last else planned,
            )
            if not counted:  # the whole firing (claim, run) is rolled back
                raise self._changed("fire", schedule)
            return record(FiringOutcome.STARTED, started.id)

        return await self._write(write, run_id=run.id if run is not None else None)

    def _changed(self, operation: str, schedule: str) -> StoreOperationError:
        # Never on SQLite, whose write transaction holds the database. A backend whose
        # transactions interleave reports it with nothing written; the scheduler's next
        # tick (or the next start-up) acts on what is stored then.
        why = f"schedule {schedule!r} changed under a rule; nothing was written"
        return StoreOperationError(operation, self.path, why)

    async def list_firings(self, schedule: str, limit: int = 50) -> list[FiringRecord]:
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {FIRINGS.sql} FROM schedule_firings "
                "WHERE schedule = ? ORDER BY nominal_at DESC LIMIT ?",
                (schedule, limit),
            ).fetchall()
        )
        with self._decoding("list_firings"):
            return [firing_record(row) for row in FIRINGS.all_named(rows)]
