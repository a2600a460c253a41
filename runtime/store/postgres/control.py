"""The PostgreSQL store's run management: the operator's state table, applied atomically.

The table itself is :mod:`runtime.store.rules.state_table`. Where the SQLite store
compares-and-sets (its single writer makes a retry rare), this one locks the run's row
(``SELECT ... FOR UPDATE``) before it reads the snapshot, in the transaction that writes
the decision: every other writer of a run's state (a claim, a group-committed
checkpoint, another operator's action in another process) locks the same row, so the
decision cannot be overtaken between its read and its write.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from runtime.errors import RunNotFoundError, StoreArgumentError
from runtime.models import RunAction, RunRecord, RunStatus, StepError
from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.postgres.sql import ACTIVE, RUN_STATE, RUNS
from runtime.store.rows import error_json, run_record, run_snapshot
from runtime.store.rules.state_table import Keep, Refusal, StateChange, decide_action


class ControlMixin(PgCore):
    """``control_run`` and ``defer_run`` (see :class:`runtime.store.base.Store`)."""

    async def control_run(self, run_id: str, action: RunAction, now: datetime) -> RunRecord:
        try:
            known = RunAction(action)
        except ValueError:
            names = ", ".join(RunAction)
            raise StoreArgumentError(f"unknown action {action!r}; known: {names}") from None

        async def write(cur: Cursor) -> dict[str, Any]:
            await cur.execute(f"SELECT {RUN_STATE} FROM runs WHERE id = %s FOR UPDATE", (run_id,))
            read = await cur.fetchone()
            if read is None:
                raise RunNotFoundError(run_id)
            # A statement of its own, so its snapshot is taken once the lock is held: it
            # sees the steps of a checkpoint that committed while this call waited for
            # the row (a subquery of the locking SELECT would not).
            await cur.execute(
                "SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = %s AND status = 'completed') "
                "AS has_completed_steps",
                (run_id,),
            )
            steps = await cur.fetchone()
            assert steps is not None  # SELECT EXISTS returns one row
            decision = decide_action(known, run_snapshot({**read, **steps}), now)
            if isinstance(decision, Refusal):
                raise decision.error()
            await _apply(cur, run_id, decision, now)
            if isinstance(decision.status, RunStatus):
                await self._wake(cur, decision.status)
            await cur.execute(f"SELECT {RUNS} FROM runs WHERE id = %s", (run_id,))
            row = await cur.fetchone()
            assert row is not None  # locked by this transaction since it was read
            return row

        row = await self._run(write, "control_run", run_id=run_id)
        with self._decoding("control_run", run_id):
            return run_record(row)

    async def _wake(self, cur: Cursor, status: RunStatus) -> None:
        """Tell the other processes about a run the action ended, or handed to any worker."""
        if status.terminal:
            await self._notify(cur, "ended")  # handle.result() and --wait return
        elif status in (RunStatus.PENDING, RunStatus.COMPENSATING):
            await self._notify(cur, "run")  # unowned and due: a worker's claim loop looks

    async def defer_run(
        self, run_id: str, expected_owner: str | None, error: str | None, available_at: datetime
    ) -> bool:
        async def write(cur: Cursor) -> bool:
            await cur.execute(
                "UPDATE runs SET error = COALESCE(%s::json, error), available_at = %s, "
                "updated_at = %s, owner_id = NULL, "
                "status = CASE WHEN status IN ('running', 'sleeping') THEN 'pending' "
                "ELSE status END WHERE id = %s AND owner_id IS NOT DISTINCT FROM %s "
                "AND status = ANY(%s)",
                (error, available_at, available_at, run_id, expected_owner, list(ACTIVE)),
            )
            deferred = cur.rowcount == 1
            if deferred:
                # The run is unowned again: another process may take it once it is due.
                await self._notify(cur, "run")
            return deferred

        return await self._run(write, "defer_run", run_id=run_id)


async def _apply(cur: Cursor, run_id: str, change: StateChange, now: datetime) -> None:
    """Write ``change`` to the run, whose row this transaction holds locked."""
    if change.empty:
        return  # already in effect: nothing to write
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
            sets.append(f"{column} = %s")
            params.append(value.value if isinstance(value, StrEnum) else value)
    if isinstance(change.error, StepError):
        sets.append("error = COALESCE(error, %s::json)")  # the first error explains the run
        params.append(error_json(change.error))
    elif change.error is None:
        sets.append("error = NULL")
    await cur.execute(
        f"UPDATE runs SET {', '.join(sets)}, updated_at = %s WHERE id = %s",
        (*params, now, run_id),
    )
    if change.drop_staged_events:
        await cur.execute("DELETE FROM run_events WHERE run_id = %s", (run_id,))
    if change.reset_steps:
        resets = sorted(status.value for status in change.reset_steps)
        await cur.execute(
            "DELETE FROM run_events WHERE run_id = %s AND step_seq IN "
            "(SELECT seq FROM steps WHERE run_id = %s AND status = ANY(%s))",
            (run_id, run_id, resets),
        )
        await cur.execute(
            "DELETE FROM steps WHERE run_id = %s AND status = ANY(%s)", (run_id, resets)
        )
