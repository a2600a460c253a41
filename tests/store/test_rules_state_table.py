"""The run state table of DESIGN 2.1 as a table: every action on every status, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtime.errors import InvalidTransitionError
from runtime.models import CANCELED_BY_OPERATOR, Control, RunAction, RunStatus, StepStatus
from runtime.store.rules.state_table import (
    RETRY_RESETS,
    Decision,
    Refusal,
    RunSnapshot,
    StateChange,
    decide_action,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
S = RunStatus
A = RunAction

NOTHING = StateChange()
PAUSE_NOW = StateChange(status=S.PAUSED)
ASK_PAUSE = StateChange(control=Control.PAUSE)
WITHDRAW_PAUSE = StateChange(control=None)
RESUME_NOW = StateChange(status=S.PENDING, available_at=NOW)
ASK_CANCEL = StateChange(control=Control.CANCEL)
END_ROLLBACK_CANCELED = StateChange(rollback_status=S.CANCELED)
ROLL_BACK_CANCELED = StateChange(
    status=S.COMPENSATING,
    rollback_status=S.CANCELED,
    control=None,
    available_at=NOW,
    error=CANCELED_BY_OPERATOR,
)
CANCEL_NOW = StateChange(
    status=S.CANCELED,
    control=None,
    ended_at=NOW,
    error=CANCELED_BY_OPERATOR,
    drop_staged_events=True,
)
RETRY_COMPENSATIONS = StateChange(
    status=S.COMPENSATING, owner_id=None, control=None, available_at=NOW, ended_at=None
)
RETRY = StateChange(
    status=S.PENDING,
    owner_id=None,
    control=None,
    error=None,
    output=None,
    rollback_status=None,
    wake_at=None,
    ended_at=None,
    available_at=NOW,
    reset_steps=RETRY_RESETS,
)

ENDED = "only retry applies to an ended run"
ROLLING_BACK = "a rollback runs to its end"
CANCELING = "a cancel is already under way"
NOT_RETRYABLE = "retry applies to failed, compensation_failed or canceled runs"


def snapshot(
    status: RunStatus,
    *,
    owner_id: str | None = None,
    control: Control | None = None,
    wake_at: datetime | None = None,
    has_completed_steps: bool = False,
) -> RunSnapshot:
    """A run nobody holds, with no request, no sleep and no completed step, unless told."""
    return RunSnapshot("run_1", status, owner_id, control, wake_at, has_completed_steps)


def refused(action: RunAction, status: RunStatus, why: str) -> Refusal:
    return Refusal(f"cannot {action} run run_1, which is {status}: {why}")


TABLE: dict[RunAction, dict[RunStatus, Decision]] = {
    A.PAUSE: {
        S.PENDING: PAUSE_NOW,
        S.RUNNING: PAUSE_NOW,
        S.SLEEPING: PAUSE_NOW,
        S.PAUSED: NOTHING,
        S.COMPENSATING: refused(A.PAUSE, S.COMPENSATING, ROLLING_BACK),
        S.COMPLETED: refused(A.PAUSE, S.COMPLETED, ENDED),
        S.FAILED: refused(A.PAUSE, S.FAILED, ENDED),
        S.COMPENSATION_FAILED: refused(A.PAUSE, S.COMPENSATION_FAILED, ENDED),
        S.CANCELED: refused(A.PAUSE, S.CANCELED, ENDED),
    },
    A.RESUME: {
        S.PENDING: NOTHING,
        S.RUNNING: NOTHING,
        S.SLEEPING: NOTHING,
        S.PAUSED: RESUME_NOW,
        S.COMPENSATING: NOTHING,
        S.COMPLETED: refused(A.RESUME, S.COMPLETED, ENDED),
        S.FAILED: refused(A.RESUME, S.FAILED, ENDED),
        S.COMPENSATION_FAILED: refused(A.RESUME, S.COMPENSATION_FAILED, ENDED),
        S.CANCELED: refused(A.RESUME, S.CANCELED, ENDED),
    },
    A.CANCEL: {
        S.PENDING: CANCEL_NOW,
        S.RUNNING: CANCEL_NOW,
        S.SLEEPING: CANCEL_NOW,
        S.PAUSED: CANCEL_NOW,
        S.COMPENSATING: END_ROLLBACK_CANCELED,
        S.COMPLETED: refused(A.CANCEL, S.COMPLETED, ENDED),
        S.FAILED: refused(A.CANCEL, S.FAILED, ENDED),
        S.COMPENSATION_FAILED: refused(A.CANCEL, S.COMPENSATION_FAILED, ENDED),
        S.CANCELED: refused(A.CANCEL, S.CANCELED, ENDED),
    },
    A.RETRY: {
        S.PENDING: refused(A.RETRY, S.PENDING, NOT_RETRYABLE),
        S.RUNNING: refused(A.RETRY, S.RUNNING, NOT_RETRYABLE),
        S.SLEEPING: refused(A.RETRY, S.SLEEPING, NOT_RETRYABLE),
        S.PAUSED: refused(A.RETRY, S.PAUSED, NOT_RETRYABLE),
        S.COMPENSATING: refused(A.RETRY, S.COMPENSATING, NOT_RETRYABLE),
        S.COMPLETED: refused(A.RETRY, S.COMPLETED, NOT_RETRYABLE),
        S.FAILED: RETRY,
        S.COMPENSATION_FAILED: RETRY_COMPENSATIONS,
        S.CANCELED: RETRY,
    },
}


def test_the_table_has_every_action_and_every_status() -> None:
    assert set(TABLE) == set(RunAction)
    for row in TABLE.values():
        assert set(row) == set(RunStatus)


@pytest.mark.parametrize(
    ("action", "status"), [(action, status) for action in RunAction for status in RunStatus]
)
def test_an_action_on_a_run_nobody_holds(action: RunAction, status: RunStatus) -> None:
    assert decide_action(action, snapshot(status), NOW) == TABLE[action][status]


# A run a worker holds, a request pending, completed steps, a durable sleep: the cells
# that differ from the table above, and those that must not.
CASES: list[tuple[RunAction, RunSnapshot, Decision]] = [
    # Held by a worker: the request waits for the step it is running to finish.
    (A.PAUSE, snapshot(S.RUNNING, owner_id="wrk_1"), ASK_PAUSE),
    (A.PAUSE, snapshot(S.PENDING, owner_id="wrk_1"), ASK_PAUSE),
    (A.CANCEL, snapshot(S.RUNNING, owner_id="wrk_1"), ASK_CANCEL),
    (A.CANCEL, snapshot(S.SLEEPING, owner_id="wrk_1", has_completed_steps=True), ASK_CANCEL),
    # A rollback under way, held or not, ends canceled.
    (A.CANCEL, snapshot(S.COMPENSATING, owner_id="wrk_1"), END_ROLLBACK_CANCELED),
    (A.CANCEL, snapshot(S.COMPENSATING, has_completed_steps=True), END_ROLLBACK_CANCELED),
    # Pause is idempotent: a pause asked already is not asked again.
    (A.PAUSE, snapshot(S.RUNNING, owner_id="wrk_1", control=Control.PAUSE), NOTHING),
    (A.PAUSE, snapshot(S.PAUSED, control=Control.PAUSE), NOTHING),
    # A pending cancel is not overtaken by a pause.
    (
        A.PAUSE,
        snapshot(S.RUNNING, owner_id="wrk_1", control=Control.CANCEL),
        refused(A.PAUSE, S.RUNNING, CANCELING),
    ),
    # Resume withdraws a pause that had not taken effect.
    (A.RESUME, snapshot(S.RUNNING, owner_id="wrk_1", control=Control.PAUSE), WITHDRAW_PAUSE),
    (A.RESUME, snapshot(S.RUNNING, owner_id="wrk_1", control=Control.CANCEL), NOTHING),
    (A.RESUME, snapshot(S.PAUSED, owner_id="wrk_1"), RESUME_NOW),
    # Resume keeps a durable sleep's wake-up time, unless it has passed.
    (
        A.RESUME,
        snapshot(S.PAUSED, wake_at=NOW + timedelta(hours=1)),
        StateChange(status=S.PENDING, available_at=NOW + timedelta(hours=1)),
    ),
    (A.RESUME, snapshot(S.PAUSED, wake_at=NOW - timedelta(hours=1)), RESUME_NOW),
    (A.RESUME, snapshot(S.PAUSED, wake_at=NOW), RESUME_NOW),
    # Cancel with something to undo rolls back first; with nothing, it ends at once.
    (A.CANCEL, snapshot(S.PENDING, has_completed_steps=True), ROLL_BACK_CANCELED),
    (A.CANCEL, snapshot(S.PAUSED, has_completed_steps=True), ROLL_BACK_CANCELED),
    (A.CANCEL, snapshot(S.SLEEPING, has_completed_steps=True), ROLL_BACK_CANCELED),
    # Retry takes the run from whoever held it.
    (A.RETRY, snapshot(S.FAILED, owner_id="wrk_1", control=Control.CANCEL), RETRY),
    (A.RETRY, snapshot(S.COMPENSATION_FAILED, owner_id="wrk_1"), RETRY_COMPENSATIONS),
    # An ended run refuses all but retry, whatever else it holds.
    (
        A.CANCEL,
        snapshot(S.COMPLETED, owner_id="wrk_1", has_completed_steps=True),
        refused(A.CANCEL, S.COMPLETED, ENDED),
    ),
    (A.RESUME, snapshot(S.FAILED, control=Control.PAUSE), refused(A.RESUME, S.FAILED, ENDED)),
]


@pytest.mark.parametrize(("action", "run", "expected"), CASES)
def test_an_action_on_a_run_with_more_to_it(
    action: RunAction, run: RunSnapshot, expected: Decision
) -> None:
    assert decide_action(action, run, NOW) == expected


def test_a_refusal_is_the_error_an_operator_sees() -> None:
    decision = decide_action(A.PAUSE, snapshot(S.COMPLETED), NOW)
    assert isinstance(decision, Refusal)
    error = decision.error()
    assert isinstance(error, InvalidTransitionError)
    assert isinstance(error, ValueError)
    assert str(error) == "cannot pause run run_1, which is completed: " + ENDED


def test_a_retry_runs_again_every_step_without_a_valid_checkpoint() -> None:
    # A completed step whose compensation did not run keeps its record (its checkpoint),
    # and a skipped one stays skipped; every other step runs again.
    assert set(StepStatus) - {StepStatus.COMPLETED, StepStatus.SKIPPED} == RETRY_RESETS


def test_an_empty_change_writes_nothing() -> None:
    assert NOTHING.empty
    assert not WITHDRAW_PAUSE.empty  # clearing a column is a change
    assert not StateChange(drop_staged_events=True).empty
