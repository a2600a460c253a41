"""The Store contract, run management: ``control_run``'s state table cell by cell, ``defer_run``."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest

from runtime import InvalidTransitionError, RunNotFoundError, RunStatus, StepStatus, StoreError
from runtime.models import Control, RunAction, StepError
from runtime.store.base import Store
from runtime.store.changes import PROGRESS, EndRollback, Pause, Sleep, StartRollback
from tests.helpers.records import T0, create, step

LATER = T0 + timedelta(minutes=1)
ENDED = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.COMPENSATION_FAILED]


def error(message: str, type: str = "E") -> str:
    return StepError(step=None, type=type, message=message).model_dump_json()


async def held(store: Store, owner: str = "wrk_a") -> str:
    return await create(store, status=RunStatus.RUNNING, owner=owner)


# -- pause -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [RunStatus.PENDING, RunStatus.SLEEPING, RunStatus.RUNNING])
async def test_pause_of_an_unheld_run_pauses_it_at_once(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)

    record = await store.control_run(run_id, RunAction.PAUSE, LATER)

    assert (record.status, record.control, record.updated_at) == (RunStatus.PAUSED, None, LATER)
    assert await store.get_run(run_id, steps=False) == record


async def test_pause_of_a_held_run_is_a_request_its_next_checkpoint_returns(store: Store) -> None:
    run_id = await held(store)

    record = await store.control_run(run_id, RunAction.PAUSE, LATER)

    assert (record.status, record.control, record.owner_id) == (
        RunStatus.RUNNING,
        Control.PAUSE,
        "wrk_a",
    )
    assert await store.checkpoint(run_id, "wrk_a", [step(1, "a")], PROGRESS, LATER) == "pause"
    # The driver obeys: parks the run paused and gives it up; the request is spent.
    obeyed = Pause()
    assert await store.checkpoint(run_id, "wrk_a", [], obeyed, LATER) is None
    stored = await store.get_run(run_id)
    assert (stored.status, stored.control, stored.owner_id) == (RunStatus.PAUSED, None, None)
    assert [s.seq for s in stored.steps] == [1]


async def test_pause_twice_is_idempotent(store: Store) -> None:
    paused = await create(store, status=RunStatus.PAUSED)
    requested = await held(store)
    await store.control_run(requested, RunAction.PAUSE, T0)

    before = {run_id: (await store.get_run(run_id)).updated_at for run_id in (paused, requested)}

    assert (await store.control_run(paused, RunAction.PAUSE, LATER)).status is RunStatus.PAUSED
    again = await store.control_run(requested, RunAction.PAUSE, LATER)
    assert (again.status, again.control) == (RunStatus.RUNNING, Control.PAUSE)
    # Nothing was written the second time: the runs' updated_at did not move.
    after = {run_id: (await store.get_run(run_id)).updated_at for run_id in (paused, requested)}
    assert after == before


@pytest.mark.parametrize("status", [*ENDED, RunStatus.COMPENSATING])
async def test_pause_of_an_ended_or_rolling_back_run_is_refused(
    store: Store, status: RunStatus
) -> None:
    run_id = await create(store, status=status)

    with pytest.raises(InvalidTransitionError):
        await store.control_run(run_id, RunAction.PAUSE, LATER)
    assert (await store.get_run(run_id)).status is status


async def test_pause_while_a_cancel_is_requested_is_refused(store: Store) -> None:
    run_id = await held(store)
    await store.control_run(run_id, RunAction.CANCEL, T0)

    with pytest.raises(InvalidTransitionError):
        await store.control_run(run_id, RunAction.PAUSE, LATER)
    assert (await store.get_run(run_id)).control is Control.CANCEL


# -- resume ------------------------------------------------------------------------------


async def test_resume_of_a_paused_run_makes_it_due_now(store: Store) -> None:
    run_id = await create(store, status=RunStatus.PAUSED, available_at=T0 - timedelta(days=1))

    record = await store.control_run(run_id, RunAction.RESUME, LATER)

    assert (record.status, record.available_at, record.owner_id) == (
        RunStatus.PENDING,
        LATER,
        None,
    )
    assert await store.claim_run(run_id, "wrk_a", None, LATER) is not None


async def test_resume_keeps_a_durable_sleeps_wake_up_time(store: Store) -> None:
    run_id = await held(store)
    wake = T0 + timedelta(hours=1)
    parked = Sleep(wake)
    await store.checkpoint(run_id, "wrk_a", [], parked, T0)
    await store.control_run(run_id, RunAction.PAUSE, T0)

    early = await store.control_run(run_id, RunAction.RESUME, LATER)

    assert (early.status, early.available_at, early.wake_at) == (RunStatus.PENDING, wake, wake)
    await store.control_run(run_id, RunAction.PAUSE, LATER)
    late = wake + timedelta(minutes=5)
    assert (await store.control_run(run_id, RunAction.RESUME, late)).available_at == late


async def test_resume_withdraws_a_pause_not_yet_obeyed(store: Store) -> None:
    run_id = await held(store)
    await store.control_run(run_id, RunAction.PAUSE, T0)

    record = await store.control_run(run_id, RunAction.RESUME, LATER)

    assert (record.status, record.control, record.owner_id) == (RunStatus.RUNNING, None, "wrk_a")
    assert await store.checkpoint(run_id, "wrk_a", [step(1, "a")], PROGRESS, LATER) is None


@pytest.mark.parametrize("status", [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SLEEPING])
async def test_resume_of_a_run_not_paused_changes_nothing(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)
    before = await store.get_run(run_id)

    assert await store.control_run(run_id, RunAction.RESUME, LATER) == before


@pytest.mark.parametrize("status", ENDED)
async def test_resume_of_an_ended_run_is_refused(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)
    with pytest.raises(InvalidTransitionError):
        await store.control_run(run_id, RunAction.RESUME, LATER)


# -- cancel ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [RunStatus.PENDING, RunStatus.SLEEPING, RunStatus.PAUSED])
async def test_cancel_with_nothing_to_undo_ends_the_run_canceled(
    store: Store, status: RunStatus
) -> None:
    run_id = await create(store, status=status)

    record = await store.control_run(run_id, RunAction.CANCEL, LATER)

    assert (record.status, record.ended_at, record.control) == (RunStatus.CANCELED, LATER, None)
    assert record.error is not None and record.error.type == "Canceled"
    assert await store.claim_run(run_id, "wrk_a", None, LATER) is None


async def test_cancel_with_completed_steps_rolls_the_run_back(store: Store) -> None:
    run_id = await held(store)
    await store.checkpoint(run_id, "wrk_a", [step(1, "charge")], PROGRESS, T0)
    await store.checkpoint(run_id, "wrk_a", [], Pause(), T0)

    record = await store.control_run(run_id, RunAction.CANCEL, LATER)

    assert (record.status, record.rollback_status, record.available_at, record.ended_at) == (
        RunStatus.COMPENSATING,
        RunStatus.CANCELED,
        LATER,
        None,
    )
    assert record.error is not None and record.error.type == "Canceled"
    # Due now: a worker takes it to run the compensations.
    claimed = await store.claim_run(run_id, "wrk_b", None, LATER)
    assert claimed is not None and claimed.status is RunStatus.COMPENSATING


async def test_cancel_of_a_held_run_is_a_request_its_next_checkpoint_returns(store: Store) -> None:
    run_id = await held(store)

    record = await store.control_run(run_id, RunAction.CANCEL, LATER)

    assert (record.status, record.control) == (RunStatus.RUNNING, Control.CANCEL)
    assert await store.checkpoint(run_id, "wrk_a", [step(1, "a")], PROGRESS, LATER) == "cancel"


async def test_cancel_while_compensating_ends_it_canceled_rather_than_failed(store: Store) -> None:
    run_id = await held(store)
    await store.transition(
        run_id,
        [RunStatus.RUNNING],
        RunStatus.COMPENSATING,
        T0,
        owner_id="wrk_a",
        rollback_status=RunStatus.FAILED,
    )

    record = await store.control_run(run_id, RunAction.CANCEL, LATER)

    assert (record.status, record.rollback_status) == (RunStatus.COMPENSATING, RunStatus.CANCELED)
    # The rollback's end: the cancel wins over the failure it was rolling back for.
    end = EndRollback(RunStatus.FAILED, LATER)
    await store.checkpoint(run_id, "wrk_a", [], end, LATER)
    assert (await store.get_run(run_id)).status is RunStatus.CANCELED


@pytest.mark.parametrize("status", ENDED)
async def test_cancel_of_an_ended_run_is_refused(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)
    with pytest.raises(InvalidTransitionError):
        await store.control_run(run_id, RunAction.CANCEL, LATER)
    assert (await store.get_run(run_id)).status is status


# -- retry -------------------------------------------------------------------------------


@pytest.mark.parametrize("ended", [RunStatus.FAILED, RunStatus.CANCELED])
async def test_retry_runs_again_from_the_first_step_not_completed(
    store: Store, ended: RunStatus
) -> None:
    run_id = await held(store)
    failed = step(2, "b", StepStatus.FAILED, error=error("m"))
    await store.checkpoint(run_id, "wrk_a", [step(1, "a"), failed], PROGRESS, T0)
    started = StartRollback(error("m"), cancel=ended is RunStatus.CANCELED)
    await store.checkpoint(run_id, "wrk_a", [], started, T0)
    await store.checkpoint(run_id, "wrk_a", [], EndRollback(RunStatus.FAILED, T0), T0)
    assert (await store.get_run(run_id)).status is ended

    record = await store.control_run(run_id, RunAction.RETRY, LATER)

    assert record.status is RunStatus.PENDING
    assert (record.error, record.output, record.rollback_status, record.ended_at) == (
        None,
        None,
        None,
        None,
    )
    assert (record.available_at, record.owner_id, record.control) == (LATER, None, None)
    assert [(s.seq, s.status) for s in await store.load_steps(run_id)] == [
        (1, StepStatus.COMPLETED)
    ]


async def test_retry_of_a_failed_rollback_retries_the_compensations(store: Store) -> None:
    run_id = await held(store)
    await store.checkpoint(run_id, "wrk_a", [step(1, "a")], PROGRESS, T0)
    end = EndRollback(RunStatus.COMPENSATION_FAILED, T0)
    await store.checkpoint(run_id, "wrk_a", [], end, T0)

    record = await store.control_run(run_id, RunAction.RETRY, LATER)

    assert (record.status, record.ended_at, record.available_at, record.owner_id) == (
        RunStatus.COMPENSATING,
        None,
        LATER,
        None,
    )
    assert [s.seq for s in await store.load_steps(run_id)] == [1]


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.SLEEPING,
        RunStatus.PAUSED,
        RunStatus.COMPENSATING,
        RunStatus.COMPLETED,
    ],
)
async def test_retry_of_a_run_not_failed_is_refused(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)
    with pytest.raises(InvalidTransitionError):
        await store.control_run(run_id, RunAction.RETRY, LATER)
    assert (await store.get_run(run_id)).status is status


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("action", list(RunAction))
async def test_control_of_an_unknown_run_is_not_found(store: Store, action: RunAction) -> None:
    with pytest.raises(RunNotFoundError):
        await store.control_run("run_missing", action, LATER)


async def test_an_unknown_action_is_refused(store: Store) -> None:
    run_id = await create(store)
    with pytest.raises(StoreError) as caught:
        await store.control_run(run_id, cast(RunAction, "explode"), LATER)
    assert isinstance(caught.value, ValueError)
    assert (await store.get_run(run_id)).status is RunStatus.PENDING


# -- defer_run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "after"),
    [
        (RunStatus.RUNNING, RunStatus.PENDING),
        (RunStatus.SLEEPING, RunStatus.PENDING),
        (RunStatus.COMPENSATING, RunStatus.COMPENSATING),
    ],
)
async def test_defer_run_hands_a_run_back_unowned_and_due_later(
    store: Store, status: RunStatus, after: RunStatus
) -> None:
    run_id = await create(store, status=status, owner="wrk_a")
    assert await store.defer_run(run_id, "wrk_a", error("no code", "UnknownWorkflowError"), LATER)

    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.available_at) == (after, None, LATER)
    assert record.error is not None and record.error.type == "UnknownWorkflowError"


async def test_defer_run_is_compare_and_set_on_the_owner(store: Store) -> None:
    run_id = await held(store, "wrk_b")

    assert not await store.defer_run(run_id, "wrk_a", None, LATER)
    assert not await store.defer_run(run_id, None, None, LATER)
    assert not await store.defer_run("run_missing", "wrk_a", None, LATER)
    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.available_at) == (
        RunStatus.RUNNING,
        "wrk_b",
        T0,
    )


@pytest.mark.parametrize("status", [*ENDED, RunStatus.PAUSED])
async def test_defer_run_leaves_paused_and_ended_runs(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)
    assert not await store.defer_run(run_id, None, None, LATER)
    assert (await store.get_run(run_id)).status is status


async def test_defer_run_without_an_error_keeps_the_one_stored(store: Store) -> None:
    run_id = await create(store)
    assert await store.defer_run(run_id, None, error("first"), T0)
    assert await store.defer_run(run_id, None, None, LATER)

    record = await store.get_run(run_id)
    assert record.error is not None and record.error.message == "first"
    assert record.available_at == LATER
    # A claim starts the run afresh: a pending run's error is cleared.
    claimed = await store.claim_run(run_id, "wrk_a", None, LATER)
    assert claimed is not None and claimed.error is None
