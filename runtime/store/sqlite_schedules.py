"""The SQLite store's scheduler tables: schedules and their firings."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.clock import from_text, to_text
from runtime.models import FiringOutcome, FiringRecord, Overlap, ScheduleRecord
from runtime.store.records import NewRun, ScheduleSpec
from runtime.store.sqlite_core import SqliteCore

_SCHEDULE_COLUMNS = (
    "name, workflow, expression, timezone, next_fire_at, executions, max_executions, overlap, "
    "catchup_window, active, last_run_id"
)
_TERMINAL = ("completed", "failed", "compensation_failed", "canceled")


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

        def write(db: sqlite3.Connection) -> list[Any]:
            stored = {
                row[0]: row
                for row in db.execute("SELECT name, expression, timezone FROM schedules")
            }
            for spec in specs:
                planned = to_text(spec.next_fire_at) if spec.next_fire_at else None
                old = stored.get(spec.name)
                if old is None:
                    db.execute(
                        f"INSERT INTO schedules ({_SCHEDULE_COLUMNS}, updated_at) "
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
                    continue
                replan = (old[1], old[2]) != (spec.expression, spec.timezone)
                # Re-planned from now: a changed expression, a schedule declared again
                # after it was removed, or one that ran out of executions and may now
                # run more (a raised number_of_executions). Otherwise the stored plan
                # stands, so downtime is caught up by the scheduler.
                db.execute(
                    "UPDATE schedules SET workflow = ?, expression = ?, timezone = ?, "
                    "max_executions = ?, overlap = ?, catchup_window = ?, active = 1, "
                    "updated_at = ?, next_fire_at = CASE WHEN ? THEN ? "
                    "WHEN active = 0 THEN ? "
                    "WHEN next_fire_at IS NULL AND (? IS NULL OR executions < ?) THEN ? "
                    "ELSE next_fire_at END WHERE name = ?",
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
                        planned,
                        spec.max_executions,
                        spec.max_executions,
                        planned,
                        spec.name,
                    ),
                )
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
                f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE active = 1 ORDER BY name"
            ).fetchall()

        rows = await self._write(write)
        with self._decoding("sync_schedules"):
            return [_schedule(row) for row in rows]

    async def list_schedules(self) -> list[ScheduleRecord]:
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {_SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
            ).fetchall()
        )
        with self._decoding("list_schedules"):
            return [_schedule(row) for row in rows]

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
        misses = [(schedule, to_text(m), stamp) for m in missed if m < nominal_at]

        def move_on(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE schedules SET next_fire_at = ?, updated_at = ? WHERE name = ?",
                (planned, stamp, schedule),
            )

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
                "SELECT executions, max_executions, overlap, last_run_id, active, next_fire_at "
                "FROM schedules WHERE name = ?",
                (schedule,),
            ).fetchone()
            if row is None or not row[4]:
                return None
            executions, max_executions, overlap, last_run_id, _, stored_next = row
            # Times are stored as uniform UTC text, so they compare as text. A plan
            # already past this nominal time means another process (or a re-plan)
            # dealt with it: never move the plan backwards.
            if stored_next is None or stored_next > nominal:
                return None
            if max_executions is not None and executions >= max_executions:
                db.execute(
                    "UPDATE schedules SET next_fire_at = NULL, updated_at = ? WHERE name = ?",
                    (stamp, schedule),
                )
                return None
            db.executemany(
                "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, "
                "recorded_at) VALUES (?, ?, 'missed', NULL, ?) "
                "ON CONFLICT (schedule, nominal_at) DO NOTHING",
                misses,
            )
            outcome = FiringOutcome.STARTED if run is not None else FiringOutcome.MISSED
            claimed = db.execute(
                "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, "
                "recorded_at) VALUES (?, ?, ?, NULL, ?) "
                "ON CONFLICT (schedule, nominal_at) DO NOTHING",
                (schedule, nominal, outcome.value, stamp),
            ).rowcount
            if claimed != 1:
                move_on(db)  # this nominal time was recorded already; the plan moves on
                return None
            if run is None:
                move_on(db)
                return record(FiringOutcome.MISSED, None)
            busy = False
            if overlap == Overlap.SKIP and last_run_id is not None:
                status = db.execute(
                    "SELECT status FROM runs WHERE id = ?", (last_run_id,)
                ).fetchone()
                busy = status is not None and status[0] not in _TERMINAL
            if busy:
                db.execute(
                    "UPDATE schedule_firings SET outcome = 'skipped_overlap' "
                    "WHERE schedule = ? AND nominal_at = ?",
                    (schedule, nominal),
                )
                move_on(db)
                return record(FiringOutcome.SKIPPED_OVERLAP, None)
            db.execute(
                "INSERT INTO runs (id, workflow, version, kind, idempotency_key, status, input, "
                "owner_id, parent_run_id, available_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
                (
                    run.id,
                    run.workflow,
                    run.version,
                    run.kind,
                    run.idempotency_key,
                    run.status.value,
                    run.input,
                    to_text(run.available_at),
                    stamp,
                    stamp,
                ),
            )
            db.execute(
                "UPDATE schedule_firings SET run_id = ? WHERE schedule = ? AND nominal_at = ?",
                (run.id, schedule, nominal),
            )
            # The last allowed execution clears the plan, so listings show no next time.
            db.execute(
                "UPDATE schedules SET executions = executions + 1, last_run_id = ?, "
                "updated_at = ?, next_fire_at = CASE WHEN max_executions IS NOT NULL "
                "AND executions + 1 >= max_executions THEN NULL ELSE ? END WHERE name = ?",
                (run.id, stamp, planned, schedule),
            )
            return record(FiringOutcome.STARTED, run.id)

        return await self._write(write, run_id=run.id if run is not None else None)

    async def list_firings(self, schedule: str, limit: int = 50) -> list[FiringRecord]:
        rows = await self._read(
            lambda db: db.execute(
                "SELECT schedule, nominal_at, outcome, run_id, recorded_at FROM schedule_firings "
                "WHERE schedule = ? ORDER BY nominal_at DESC LIMIT ?",
                (schedule, limit),
            ).fetchall()
        )
        with self._decoding("list_firings"):
            return [
                FiringRecord(
                    schedule=r[0],
                    nominal_at=from_text(r[1]),
                    outcome=FiringOutcome(r[2]),
                    run_id=r[3],
                    recorded_at=from_text(r[4]),
                )
                for r in rows
            ]


def _schedule(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],
        workflow=row[1],
        expression=row[2],
        timezone=row[3],
        next_fire_at=from_text(row[4]) if row[4] else None,
        executions=row[5],
        max_executions=row[6],
        overlap=Overlap(row[7]),
        catchup_window=row[8],
        active=bool(row[9]),
        last_run_id=row[10],
    )
