"""How a backend writes each named change of a run (``store/changes.py``) to the run's row.

Shared by both backends: the SET clauses and what happens around them are the same;
only the placeholder (``?`` for SQLite, ``%s`` for psycopg) and the stored form of a
time (UTC text for SQLite, the ``datetime`` itself for PostgreSQL) differ, and are
given by :class:`Dialect`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
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
class Dialect:
    """A backend's placeholder and stored form of a time."""

    mark: str
    time: Callable[[datetime], Any]


SQLITE = Dialect("?", to_text)
POSTGRES = Dialect("%s", lambda moment: moment)


@dataclasses.dataclass(frozen=True, slots=True)
class RowChange:
    """What a change does to the run's row and around it.

    Attributes:
        sets: the SET clauses (besides ``updated_at``), with ``params`` for their marks.
        releases: the run is given up (its pending request is answered by the change).
        unless_requested: written only when no operator's request is pending.
        staged: what becomes of the events the run's steps staged: ``publish``,
            ``drop``, or ``None`` (kept).
        events: events to insert in the same transaction.
        ends: the run ends (processes waiting for it are woken).
        queues: the run goes back to the queue (another worker may take it).
    """

    sets: tuple[str, ...]
    params: tuple[Any, ...] = ()
    releases: bool = False
    unless_requested: bool = False
    staged: str | None = None
    events: tuple[NewEvent, ...] = ()
    ends: bool = False
    queues: bool = False


_NO_ROW = RowChange(())
"""``Progress``: built once, as it is asked for at nearly every step."""


def row_change(change: RunChange, dialect: Dialect = SQLITE) -> RowChange:
    """The statement parts that write ``change`` (``Progress`` writes no run row)."""
    sets: tuple[str, ...]
    params: tuple[Any, ...]
    m, at = dialect.mark, dialect.time
    match change:
        case Progress():
            return _NO_ROW
        case Complete(output=output, ended_at=ended_at, events=events):
            sets = (f"status = {m}", f"output = {m}", f"ended_at = {m}", "wake_at = NULL")
            params = (RunStatus.COMPLETED.value, output, at(ended_at))
            return RowChange((*sets, *_RELEASE), params, True, True, "publish", events, ends=True)
        case Park(until=until):
            sets = (f"status = {m}", f"available_at = {m}", *_RELEASE)
            params = (RunStatus.SLEEPING.value, at(until))
            return RowChange(sets, params, releases=True, queues=True)
        case Sleep(until=until):
            sets = (f"status = {m}", f"available_at = {m}", f"wake_at = {m}", *_RELEASE)
            return RowChange(sets, (RunStatus.SLEEPING.value, at(until), at(until)), releases=True)
        case Woke():
            return RowChange(("wake_at = NULL",))
        case Pause():
            return RowChange((f"status = {m}", *_RELEASE), (RunStatus.PAUSED.value,), releases=True)
        case Release(available_at=available_at):
            sets = (f"status = {m}", f"available_at = {m}", *_RELEASE)
            params = (RunStatus.PENDING.value, at(available_at))
            return RowChange(sets, params, releases=True, queues=True)
        case StartRollback(error=error, cancel=cancel):
            parts: list[tuple[str, Any]] = [(f"status = {m}", RunStatus.COMPENSATING.value)]
            if error is not None:
                parts.append((f"error = {m}", error))
            if cancel:
                parts.append((f"rollback_status = {m}", RunStatus.CANCELED.value))
            return RowChange(tuple(p[0] for p in parts), tuple(p[1] for p in parts))
        case EndRollback(status=status, ended_at=ended_at, events=events):
            # A cancel recorded while the rollback ran (rollback_status) wins over failed.
            ends = (
                f"status = COALESCE(rollback_status, {m})"
                if change.cancel_wins
                else f"status = {m}"
            )
            sets = (ends, f"ended_at = {m}", *_RELEASE)
            params = (status.value, at(ended_at))
            return RowChange(sets, params, True, False, "drop", events, ends=True)
