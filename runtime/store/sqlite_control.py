"""The SQLite store's run management: the operator's state table, applied atomically.

The table itself is :mod:`runtime.store.rules.state_table`; this module reads a run's
snapshot, asks it, and writes its decision with a compare-and-set, in one transaction.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from enum import StrEnum
from typing import Any

from runtime.clock import to_text
from runtime.errors import RunNotFoundError, StoreArgumentError, StoreOperationError
from runtime.models import RunAction, RunRecord, StepError
from runtime.store.rows import Row, error_json, run_record, run_snapshot
from runtime.store.rules.state_table import Keep, Refusal, StateChange, decide_action
from runtime.store.sqlite_core import SqliteCore
from runtime.store.sqlite_tables import RUN_SNAPSHOT, RUNS

_DECISIONS = 3
"""Decisions tried before a run that keeps changing under them is reported.

Never more than one on SQLite, whose write transaction holds the database; a backend
whose transactions interleave decides again from what it reads then, and reports a
``StoreOperationError`` (nothing written) only if the run keeps changing."""


class ControlMixin(SqliteCore):
    """``control_run`` and ``defer_run`` (see :class:`runtime.store.base.Store`)."""

    async def control_run(self, run_id: str, action: RunAction, now: datetime) -> RunRecord:
        try:
            known = RunAction(action)
        except ValueError:
            names = ", ".join(RunAction)
            raise StoreArgumentError(f"unknown action {action!r}; known: {names}") from None

        def write(db: sqlite3.Connection) -> Any:
            for _ in range(_DECISIONS):
                row = db.execute(
                    f"SELECT {RUN_SNAPSHOT.sql} FROM runs WHERE id = ?", (run_id,)
                ).fetchone()
                if row is None:
                    raise RunNotFoundError(run_id)
                read = RUN_SNAPSHOT.named(row)
                decision = decide_action(known, run_snapshot(read), now)
                if isinstance(decision, Refusal):
                    raise decision.error()
                if _apply(db, decision, read, now):
                    return db.execute(
                        f"SELECT {RUNS.sql} FROM runs WHERE id = ?", (run_id,)
                    ).fetchone()
            why = f"the run kept changing while {known} applied; nothing was written"
            raise StoreOperationError("control_run", self.path, why, run_id)

        row = await self._write(write, run_id=run_id)
        with self._decoding("control_run", run_id):
            return run_record(RUNS.named(row))

    async def defer_run(
        self, run_id: str, expected_owner: str | None, error: str | None, available_at: datetime
    ) -> bool:
        due = to_text(available_at)

        def write(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "UPDATE runs SET error = COALESCE(?, error), available_at = ?, "
                    "updated_at = ?, owner_id = NULL, "
                    "status = CASE WHEN status IN ('running', 'sleeping') THEN 'pending' "
                    "ELSE status END WHERE id = ? AND owner_id IS ? "
                    "AND status IN ('pending', 'running', 'sleeping', 'compensating')",
                    (error, due, due, run_id, expected_owner),
                ).rowcount
                == 1
            )

        return await self._write(write, run_id=run_id)


def _apply(db: sqlite3.Connection, change: StateChange, read: Row, now: datetime) -> bool:
    """Write ``change`` if the run still holds what was ``read``; whether it did.

    The compare-and-set comes first, so a run that changed meanwhile has had nothing
    written to it when the caller decides again.
    """
    if change.empty:
        return True  # already in effect: nothing to write
    sets: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("status", change.status),
        ("control", change.control),
        ("owner_id", change.owner_id),
        ("available_at", change.available_at),
        ("wake_at", change.wake_at),
        ("rollback_status", change.rollback_status),
        ("ended_at", change.ended_at),
        ("output", change.output),
    ):
        if not isinstance(value, Keep):
            sets.append(f"{column} = ?")
            params.append(_column(value))
    if isinstance(change.error, StepError):
        sets.append("error = COALESCE(error, ?)")  # the first error explains the run
        params.append(error_json(change.error))
    elif change.error is None:
        sets.append("error = NULL")
    run_id = read["id"]
    held = (run_id, read["status"], read["owner_id"], read["control"], read["wake_at"])
    written = db.execute(
        f"UPDATE runs SET {', '.join(sets)}, updated_at = ? WHERE id = ? AND status = ? "
        "AND owner_id IS ? AND control IS ? AND wake_at IS ?",
        (*params, to_text(now), *held),
    ).rowcount
    if written != 1:
        return False
    if change.drop_staged_events:
        db.execute("DELETE FROM run_events WHERE run_id = ?", (run_id,))
    if change.reset_steps:
        resets = sorted(change.reset_steps)
        marks = ", ".join("?" * len(resets))
        db.execute(
            "DELETE FROM run_events WHERE run_id = ? AND step_seq IN "
            f"(SELECT seq FROM steps WHERE run_id = ? AND status IN ({marks}))",
            (run_id, run_id, *resets),
        )
        db.execute(f"DELETE FROM steps WHERE run_id = ? AND status IN ({marks})", (run_id, *resets))
    return True


def _column(value: datetime | StrEnum | None) -> str | None:
    if isinstance(value, datetime):
        return to_text(value)
    return value.value if value is not None else None
