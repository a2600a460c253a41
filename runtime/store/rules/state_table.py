"""The run state table of DESIGN 2.1: what an operator's pause, resume, cancel or retry does.

:func:`decide_action` is the whole table. A backend reads a :class:`RunSnapshot`, calls
it, and applies the :class:`StateChange` it returns with a compare-and-set on the columns
the snapshot holds (``status``, ``owner_id``, ``control``, ``wake_at``), or raises the
:class:`Refusal`'s error. The completed steps the snapshot counts need no compare: only a
worker adds one, and a worker holds the run (``owner_id`` is set) while it does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from runtime.errors import InvalidTransitionError
from runtime.models import (
    CANCELED_BY_OPERATOR,
    Control,
    RunAction,
    RunStatus,
    StepError,
    StepStatus,
)


class Keep(enum.Enum):
    """The value of a :class:`StateChange` field that leaves its column as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP

RETRY_RESETS: Final = frozenset(
    {
        StepStatus.FAILED,
        StepStatus.COMPENSATING,
        StepStatus.COMPENSATED,
        StepStatus.COMPENSATION_FAILED,
        StepStatus.RUNNING,
    }
)
"""Step records a retry removes: their step runs again (a kept ``completed`` one does not)."""


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """The columns of a run the state table reads.

    Attributes:
        run_id: the run.
        status: its status.
        owner_id: the worker holding it, if one does.
        control: the operator's request a worker has not obeyed yet.
        wake_at: when a durable sleep ends, if the run sleeps or slept.
        has_completed_steps: whether any step completed (a cancel has something to undo).
    """

    run_id: str
    status: RunStatus
    owner_id: str | None
    control: Control | None
    wake_at: datetime | None
    has_completed_steps: bool


@dataclass(frozen=True, slots=True)
class StateChange:
    """New values for a run's columns; a field left :data:`KEEP` keeps its column's value.

    An empty change (every field kept) writes nothing: the action was already in effect.
    Any other change also sets ``updated_at`` to now.

    Attributes:
        status: the new status.
        control: the new request (``None`` clears it).
        owner_id: ``None`` releases the run from its holder.
        available_at: when the run is next due.
        wake_at: ``None`` forgets a durable sleep's wake-up time.
        rollback_status: the status a rollback ends in (``None``: the default, failed).
        ended_at: when the run ended (``None``: it has not).
        output: ``None`` clears the run's output.
        error: ``None`` clears the run's error; a :class:`StepError` is recorded only if
            the run has none (the first error is the one that explains the run).
        drop_staged_events: drop the events the run staged (DESIGN 2.4: a canceled run's
            events are never published).
        reset_steps: step records with these statuses are removed, with the events they
            staged, so those steps run again.
    """

    status: RunStatus | Keep = KEEP
    control: Control | Keep | None = KEEP
    owner_id: Keep | None = KEEP
    available_at: datetime | Keep = KEEP
    wake_at: Keep | None = KEEP
    rollback_status: RunStatus | Keep | None = KEEP
    ended_at: datetime | Keep | None = KEEP
    output: Keep | None = KEEP
    error: StepError | Keep | None = KEEP
    drop_staged_events: bool = False
    reset_steps: frozenset[StepStatus] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        """Whether the change writes nothing."""
        return self == StateChange()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An action the table refuses, with the reason the operator is shown.

    Attributes:
        message: the whole message (``cannot pause run ..., which is completed: ...``).
    """

    message: str

    def error(self) -> InvalidTransitionError:
        """The exception a backend raises for this refusal."""
        return InvalidTransitionError(self.message)


Decision = StateChange | Refusal
"""What :func:`decide_action` returns: the change to apply, or a refusal."""

_ENDED = "only retry applies to an ended run"


def decide_action(action: RunAction, run: RunSnapshot, now: datetime) -> Decision:
    """The state table of DESIGN 2.1: what ``action`` does to ``run`` at ``now``.

    Pause and resume are idempotent; anything on a terminal status other than retry is
    refused. A request to a run a worker holds is left for the worker (``control``),
    which obeys it once the step it is running finishes.
    """
    match action:
        case RunAction.PAUSE:
            return _pause(run)
        case RunAction.RESUME:
            return _resume(run, now)
        case RunAction.CANCEL:
            return _cancel(run, now)
        case RunAction.RETRY:
            return _retry(run, now)


def _refuse(action: RunAction, run: RunSnapshot, why: str) -> Refusal:
    return Refusal(f"cannot {action} run {run.run_id}, which is {run.status}: {why}")


def _pause(run: RunSnapshot) -> Decision:
    if run.status == RunStatus.PAUSED or run.control == Control.PAUSE:
        return StateChange()  # idempotent
    if run.status.terminal:
        return _refuse(RunAction.PAUSE, run, _ENDED)
    if run.status == RunStatus.COMPENSATING:
        return _refuse(RunAction.PAUSE, run, "a rollback runs to its end")
    if run.control == Control.CANCEL:
        return _refuse(RunAction.PAUSE, run, "a cancel is already under way")
    if run.owner_id is None:
        return StateChange(status=RunStatus.PAUSED)
    # Held by a worker: it pauses the run once the step it is running finishes.
    return StateChange(control=Control.PAUSE)


def _resume(run: RunSnapshot, now: datetime) -> Decision:
    if run.status.terminal:
        return _refuse(RunAction.RESUME, run, _ENDED)
    if run.control == Control.PAUSE:  # the pause had not taken effect yet: withdraw it
        return StateChange(control=None)
    if run.status != RunStatus.PAUSED:
        return StateChange()  # idempotent: nothing to resume
    # Due now, except that a durable sleep keeps its original wake-up time.
    due = run.wake_at if run.wake_at is not None and run.wake_at > now else now
    return StateChange(status=RunStatus.PENDING, available_at=due)


def _cancel(run: RunSnapshot, now: datetime) -> Decision:
    if run.status.terminal:
        return _refuse(RunAction.CANCEL, run, _ENDED)
    if run.status == RunStatus.COMPENSATING:
        # Already rolling back: it ends canceled rather than failed.
        return StateChange(rollback_status=RunStatus.CANCELED)
    if run.owner_id is not None:
        # Held by a worker: it rolls the run back once the step it is running finishes.
        return StateChange(control=Control.CANCEL)
    if run.has_completed_steps:
        # Something to undo: the worker runs the compensations, then the run is canceled.
        return StateChange(
            status=RunStatus.COMPENSATING,
            rollback_status=RunStatus.CANCELED,
            control=None,
            available_at=now,
            error=CANCELED_BY_OPERATOR,
        )
    return StateChange(
        status=RunStatus.CANCELED,
        control=None,
        ended_at=now,
        error=CANCELED_BY_OPERATOR,
        drop_staged_events=True,
    )


def _retry(run: RunSnapshot, now: datetime) -> Decision:
    if run.status == RunStatus.COMPENSATION_FAILED:
        # Retry the compensations that failed (and those after them).
        return StateChange(
            status=RunStatus.COMPENSATING,
            owner_id=None,
            control=None,
            available_at=now,
            ended_at=None,
        )
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELED):
        why = "retry applies to failed, compensation_failed or canceled runs"
        return _refuse(RunAction.RETRY, run, why)
    # From the first step with no valid checkpoint: a step whose compensation ran (or
    # that failed, or was cut off) runs again; a completed step with none keeps its record.
    return StateChange(
        status=RunStatus.PENDING,
        owner_id=None,
        control=None,
        error=None,
        output=None,
        rollback_status=None,
        wake_at=None,
        ended_at=None,
        available_at=now,
        reset_steps=RETRY_RESETS,
    )
