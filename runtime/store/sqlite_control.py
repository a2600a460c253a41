"""The SQLite store's run management: the operator's state table, applied atomically."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from runtime.clock import to_text
from runtime.errors import InvalidTransitionError, RunNotFoundError, StoreArgumentError
from runtime.models import RunAction, RunRecord
from runtime.store.rows import run_record
from runtime.store.sqlite_core import SqliteCore
from runtime.store.sqlite_tables import RUN_STATE, RUNS

_TERMINAL = ("completed", "failed", "compensation_failed", "canceled")
_RESET = ("failed", "compensating", "compensated", "compensation_failed", "running")
"""Step records a retry removes: their step runs again (a kept ``completed`` one does not)."""


class ControlMixin(SqliteCore):
    """``control_run`` and ``defer_run`` (see :class:`runtime.store.base.Store`)."""

    async def control_run(self, run_id: str, action: RunAction, now: datetime) -> RunRecord:
        stamp = to_text(now)
        apply = _ACTIONS.get(action)
        if apply is None:
            raise StoreArgumentError(f"unknown action {action!r}; known: {', '.join(_ACTIONS)}")

        def write(db: sqlite3.Connection) -> Any:
            row = db.execute(f"SELECT {RUN_STATE.sql} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id)
            state = RUN_STATE.named(row)
            apply(
                db,
                run_id,
                stamp,
                state["status"],
                state["owner_id"],
                state["control"],
                state["wake_at"],
            )
            return db.execute(f"SELECT {RUNS.sql} FROM runs WHERE id = ?", (run_id,)).fetchone()

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


def _refuse(run_id: str, action: str, status: str, why: str = "") -> InvalidTransitionError:
    detail = f": {why}" if why else ""
    return InvalidTransitionError(f"cannot {action} run {run_id}, which is {status}{detail}")


def _pause(
    db: sqlite3.Connection,
    run_id: str,
    stamp: str,
    status: str,
    owner: str | None,
    control: str | None,
    wake_at: str | None,
) -> None:
    if status == "paused" or control == "pause":
        return  # idempotent
    if status in _TERMINAL:
        raise _refuse(run_id, "pause", status, "only retry applies to an ended run")
    if status == "compensating":
        raise _refuse(run_id, "pause", status, "a rollback runs to its end")
    if control == "cancel":
        raise _refuse(run_id, "pause", status, "a cancel is already under way")
    if owner is None:
        db.execute(
            "UPDATE runs SET status = 'paused', updated_at = ? WHERE id = ?", (stamp, run_id)
        )
    else:
        # Held by a worker: it pauses the run once the step it is running finishes.
        db.execute(
            "UPDATE runs SET control = 'pause', updated_at = ? WHERE id = ?", (stamp, run_id)
        )


def _resume(
    db: sqlite3.Connection,
    run_id: str,
    stamp: str,
    status: str,
    owner: str | None,
    control: str | None,
    wake_at: str | None,
) -> None:
    if status in _TERMINAL:
        raise _refuse(run_id, "resume", status, "only retry applies to an ended run")
    if control == "pause":  # the pause had not taken effect yet: withdraw it
        db.execute("UPDATE runs SET control = NULL, updated_at = ? WHERE id = ?", (stamp, run_id))
        return
    if status != "paused":
        return  # idempotent: nothing to resume
    # Due now, except that a durable sleep keeps its original wake-up time.
    due = wake_at if wake_at is not None and wake_at > stamp else stamp
    db.execute(
        "UPDATE runs SET status = 'pending', available_at = ?, updated_at = ? WHERE id = ?",
        (due, stamp, run_id),
    )


def _cancel(
    db: sqlite3.Connection,
    run_id: str,
    stamp: str,
    status: str,
    owner: str | None,
    control: str | None,
    wake_at: str | None,
) -> None:
    if status in _TERMINAL:
        raise _refuse(run_id, "cancel", status, "only retry applies to an ended run")
    if status == "compensating":
        # Already rolling back: it ends canceled rather than failed.
        db.execute(
            "UPDATE runs SET rollback_status = 'canceled', updated_at = ? WHERE id = ?",
            (stamp, run_id),
        )
        return
    if owner is not None:
        # Held by a worker: it rolls the run back once the step it is running finishes.
        db.execute(
            "UPDATE runs SET control = 'cancel', updated_at = ? WHERE id = ?", (stamp, run_id)
        )
        return
    done = db.execute(
        "SELECT COUNT(*) FROM steps WHERE run_id = ? AND status = 'completed'", (run_id,)
    ).fetchone()[0]
    if done:
        # Something to undo: the worker runs the compensations, then the run is canceled.
        db.execute(
            "UPDATE runs SET status = 'compensating', rollback_status = 'canceled', "
            "control = NULL, available_at = ?, updated_at = ?, error = COALESCE(error, ?) "
            "WHERE id = ?",
            (stamp, stamp, _canceled_error(), run_id),
        )
        return
    db.execute(
        "UPDATE runs SET status = 'canceled', control = NULL, ended_at = ?, updated_at = ?, "
        "error = COALESCE(error, ?) WHERE id = ?",
        (stamp, stamp, _canceled_error(), run_id),
    )
    db.execute("DELETE FROM run_events WHERE run_id = ?", (run_id,))


def _retry(
    db: sqlite3.Connection,
    run_id: str,
    stamp: str,
    status: str,
    owner: str | None,
    control: str | None,
    wake_at: str | None,
) -> None:
    if status == "compensation_failed":
        # Retry the compensations that failed (and those after them).
        db.execute(
            "UPDATE runs SET status = 'compensating', owner_id = NULL, control = NULL, "
            "available_at = ?, ended_at = NULL, updated_at = ? WHERE id = ?",
            (stamp, stamp, run_id),
        )
        return
    if status not in ("failed", "canceled"):
        raise _refuse(
            run_id, "retry", status, "retry applies to failed, compensation_failed or canceled runs"
        )
    marks = ", ".join("?" * len(_RESET))
    db.execute(
        "DELETE FROM run_events WHERE run_id = ? AND step_seq IN "
        f"(SELECT seq FROM steps WHERE run_id = ? AND status IN ({marks}))",
        (run_id, run_id, *_RESET),
    )
    db.execute(f"DELETE FROM steps WHERE run_id = ? AND status IN ({marks})", (run_id, *_RESET))
    db.execute(
        "UPDATE runs SET status = 'pending', owner_id = NULL, control = NULL, error = NULL, "
        "output = NULL, rollback_status = NULL, wake_at = NULL, ended_at = NULL, "
        "available_at = ?, updated_at = ? WHERE id = ?",
        (stamp, stamp, run_id),
    )


def _canceled_error() -> str:
    return json.dumps(
        {"type": "Canceled", "message": "canceled by an operator", "step": None, "traceback": None}
    )


_ACTIONS = {"pause": _pause, "resume": _resume, "cancel": _cancel, "retry": _retry}
