"""How the SQLite store writes each named change of a run (``store/changes.py``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from runtime.clock import to_text
from runtime.models import RunStatus
from runtime.store.changes import (
    Complete,
    EndRollback,
    Park,
    Pause,
    Progress,
    Release,
    RunChange,
    Sleep,
    StartRollback,
    Woke,
)
from runtime.store.records import NewEvent

_RELEASE = ("owner_id = NULL", "control = NULL")
"""Give the run up: its owner, and an operator's request it answered, are cleared."""


@dataclasses.dataclass(frozen=True, slots=True)
class RowChange:
    """What a change does to the run's row and around it.

    Attributes:
        sets: the SET clauses (besides ``updated_at``), with ``params`` for their ``?``.
        releases: the run is given up (its pending request is answered by the change).
        unless_requested: written only when no operator's request is pending.
        staged: what becomes of the events the run's steps staged: ``publish``,
            ``drop``, or ``None`` (kept).
        events: events to insert in the same transaction.
    """

    sets: tuple[str, ...]
    params: tuple[Any, ...] = ()
    releases: bool = False
    unless_requested: bool = False
    staged: str | None = None
    events: tuple[NewEvent, ...] = ()


_NO_ROW = RowChange(())
"""``Progress``: built once, as it is asked for at nearly every step."""


def row_change(change: RunChange) -> RowChange:
    """The statement parts that write ``change`` (``Progress`` writes no run row)."""
    sets: tuple[str, ...]
    params: tuple[Any, ...]
    match change:
        case Progress():
            return _NO_ROW
        case Complete(output=output, ended_at=ended_at, events=events):
            sets = ("status = ?", "output = ?", "ended_at = ?", "wake_at = NULL", *_RELEASE)
            params = (RunStatus.COMPLETED.value, output, to_text(ended_at))
            return RowChange(sets, params, True, True, "publish", events)
        case Park(until=until):
            sets = ("status = ?", "available_at = ?", *_RELEASE)
            return RowChange(sets, (RunStatus.SLEEPING.value, to_text(until)), releases=True)
        case Sleep(until=until):
            sets = ("status = ?", "available_at = ?", "wake_at = ?", *_RELEASE)
            at = to_text(until)
            return RowChange(sets, (RunStatus.SLEEPING.value, at, at), releases=True)
        case Woke():
            return RowChange(("wake_at = NULL",))
        case Pause():
            return RowChange(("status = ?", *_RELEASE), (RunStatus.PAUSED.value,), releases=True)
        case Release(available_at=available_at):
            sets = ("status = ?", "available_at = ?", *_RELEASE)
            params = (RunStatus.PENDING.value, to_text(available_at))
            return RowChange(sets, params, releases=True)
        case StartRollback(error=error, cancel=cancel):
            parts: list[tuple[str, Any]] = [("status = ?", RunStatus.COMPENSATING.value)]
            if error is not None:
                parts.append(("error = ?", error))
            if cancel:
                parts.append(("rollback_status = ?", RunStatus.CANCELED.value))
            return RowChange(tuple(p[0] for p in parts), tuple(p[1] for p in parts))
        case EndRollback(status=status, ended_at=ended_at, events=events):
            # A cancel recorded while the rollback ran (rollback_status) wins over failed.
            ends = "status = COALESCE(rollback_status, ?)" if change.cancel_wins else "status = ?"
            sets = (ends, "ended_at = ?", *_RELEASE)
            params = (status.value, to_text(ended_at))
            return RowChange(sets, params, releases=True, staged="drop", events=events)
