"""The Store contract, checkpoints: steps and the run's progress written together, held leases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from runtime import LeaseLostError, RunStatus, StepStatus
from runtime.ids import new_id
from runtime.models import RunAction
from runtime.store.base import Store
from runtime.store.changes import (
    PROGRESS,
    Complete,
    EndRollback,
    Park,
    Release,
    Sleep,
    StartRollback,
    Woke,
)
from runtime.store.records import NewEvent, StagedEvent, StepWrite
from tests.helpers.records import T0, add_worker, create, step

END = T0 + timedelta(minutes=1)


def staged(name: str, n: int) -> StagedEvent:
    return StagedEvent(name, json.dumps({"n": n}), "{}")


# -- checkpoint --------------------------------------------------------------------


async def test_checkpoint_writes_steps_and_the_run_update_together(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    later = T0 + timedelta(seconds=5)

    await store.checkpoint(
        run_id,
        "wrk_a",
        [
            step(
                1,
                "validate",
                output='{"ok": true}',
                started_at=T0,
                ended_at=later,
                completed_order=1,
            ),
            step(
                2,
                "reserve",
                StepStatus.FAILED,
                compensate_input='["r1"]',
                error='{"step": "reserve", "type": "ValueError", "message": "no stock"}',
            ),
        ],
        StartRollback('{"step": "reserve", "type": "ValueError", "message": "no stock"}'),
        later,
    )

    record = await store.get_run(run_id)
    assert record.status is RunStatus.COMPENSATING
    assert record.owner_id == "wrk_a"
    assert record.updated_at == later
    assert record.error is not None
    assert (record.error.step, record.error.type, record.error.message) == (
        "reserve",
        "ValueError",
        "no stock",
    )
    assert [(s.seq, s.name, s.status) for s in record.steps] == [
        (1, "validate", StepStatus.COMPLETED),
        (2, "reserve", StepStatus.FAILED),
    ]
    first, second = record.steps
    assert first.output == {"ok": True}
    assert (first.started_at, first.ended_at, first.completed_order) == (T0, later, 1)
    assert second.compensate_input == ["r1"]
    assert second.error is not None and second.error.message == "no stock"


async def test_checkpoint_overwrites_a_step_at_the_same_seq(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")

    await store.checkpoint(run_id, "wrk_a", [step(1, "pay", StepStatus.RUNNING)], PROGRESS, T0)
    await store.checkpoint(
        run_id,
        "wrk_a",
        [StepWrite(seq=1, name="pay", status=StepStatus.COMPLETED, attempts=3, output="7")],
        PROGRESS,
        T0,
    )

    steps = await store.load_steps(run_id)
    assert [(s.seq, s.status, s.attempts, s.output) for s in steps] == [
        (1, StepStatus.COMPLETED, 3, 7)
    ]


async def test_checkpoint_ends_and_releases_a_run(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    end = T0 + timedelta(minutes=1)

    await store.checkpoint(
        run_id,
        "wrk_a",
        [],
        Complete(output='{"id": "o1"}', ended_at=end),
        end,
    )

    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.output, record.ended_at) == (
        RunStatus.COMPLETED,
        None,
        {"id": "o1"},
        end,
    )


async def test_checkpoint_by_a_non_owner_raises_and_writes_nothing(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(1, "first")], PROGRESS, T0)

    with pytest.raises(LeaseLostError) as caught:
        await store.checkpoint(
            run_id,
            "wrk_b",
            [step(2, "second"), step(1, "first", StepStatus.FAILED)],
            Complete(output='"stolen"', ended_at=T0),
            T0 + timedelta(seconds=9),
        )

    assert (caught.value.run_id, caught.value.owner_id) == (run_id, "wrk_b")
    record = await store.get_run(run_id)
    assert (record.status, record.output, record.owner_id) == (RunStatus.RUNNING, None, "wrk_a")
    assert record.updated_at == T0
    assert [(s.seq, s.status) for s in record.steps] == [(1, StepStatus.COMPLETED)]


async def test_checkpoint_of_a_released_run_raises_lease_lost(store: Store) -> None:
    run_id = await create(store, status=RunStatus.PENDING)

    with pytest.raises(LeaseLostError):
        await store.checkpoint(run_id, "wrk_a", [step(1, "first")], PROGRESS, T0)
    assert await store.load_steps(run_id) == []


async def test_checkpoint_of_an_unknown_run_raises_lease_lost(store: Store) -> None:
    with pytest.raises(LeaseLostError):
        await store.checkpoint("run_missing", "wrk_a", [step(1, "x")], PROGRESS, T0)


async def test_checkpoint_after_another_worker_took_the_run_raises_lease_lost(
    store: Store,
) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    assert await store.claim_run(run_id, "wrk_b", "wrk_a", T0) is not None

    with pytest.raises(LeaseLostError):
        await store.checkpoint(run_id, "wrk_a", [step(1, "late")], PROGRESS, T0)
    await store.checkpoint(run_id, "wrk_b", [step(1, "taken")], PROGRESS, T0)
    assert [s.name for s in await store.load_steps(run_id)] == ["taken"]


async def test_checkpoint_of_a_worker_taken_for_dead_raises_lease_lost(store: Store) -> None:
    await add_worker(store, "wrk_a", T0)
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.remove_workers(["wrk_a"], T0)

    with pytest.raises(LeaseLostError):
        await store.checkpoint(run_id, "wrk_a", [step(1, "a")], PROGRESS, T0)
    assert not await store.heartbeat("wrk_a", T0)


async def test_a_completion_waits_while_a_request_is_pending(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.control_run(run_id, RunAction.CANCEL, T0)
    done = Complete(output="1", ended_at=END)

    request = await store.checkpoint(run_id, "wrk_a", [step(1, "last")], done, END)

    assert request == "cancel"
    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.output) == (RunStatus.RUNNING, "wrk_a", None)
    assert [s.name for s in record.steps] == ["last"]  # the step is recorded all the same


async def test_a_completion_applies_when_nothing_is_pending(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    done = Complete(output="1", ended_at=END)

    assert await store.checkpoint(run_id, "wrk_a", [step(1, "last")], done, END) is None

    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.output) == (RunStatus.COMPLETED, None, 1)


async def test_staged_events_are_published_when_the_run_completes(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    first = step(1, "a", events=(staged("order.placed", 1), staged("order.paid", 2)))
    await store.checkpoint(run_id, "wrk_a", [first], PROGRESS, T0)
    await store.checkpoint(run_id, "wrk_a", [step(2, "b", events=(staged("x", 3),))], PROGRESS, T0)
    assert (await store.list_events()).items == []  # staged, not published

    done = Complete(output="null", ended_at=END)
    await store.checkpoint(run_id, "wrk_a", [], done, END)

    events = list(reversed((await store.list_events()).items))
    assert [(e.name, e.data, e.source_run_id) for e in events] == [
        ("order.placed", {"n": 1}, run_id),
        ("order.paid", {"n": 2}, run_id),
        ("x", {"n": 3}, run_id),
    ]
    assert {e.occurred_at for e in events} == {END}


async def test_staged_events_are_dropped_when_the_run_fails(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(1, "a", events=(staged("e", 1),))], PROGRESS, T0)

    failed = EndRollback(RunStatus.FAILED, END)
    await store.checkpoint(run_id, "wrk_a", [], failed, END)
    await store.control_run(run_id, RunAction.RETRY, END)
    await store.claim_run(run_id, "wrk_a", None, END)
    done = Complete(output="null", ended_at=END)
    await store.checkpoint(run_id, "wrk_a", [], done, END)

    assert (await store.list_events()).items == []


async def test_events_of_a_change_are_stored_with_the_checkpoint(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    emitted = NewEvent(new_id("evt"), "order.shipped", "7", "{}", T0, T0, source_run_id=run_id)

    done = Complete(output="null", ended_at=T0, events=(emitted,))
    await store.checkpoint(run_id, "wrk_a", [step(1, "ship")], done, T0)
    with pytest.raises(LeaseLostError):
        lost = NewEvent(new_id("evt"), "lost", "1", "{}", T0, T0)
        await store.checkpoint(run_id, "wrk_b", [], EndRollback(RunStatus.FAILED, T0, (lost,)), T0)

    assert [(e.id, e.data) for e in (await store.list_events()).items] == [(emitted.id, 7)]


async def test_a_durable_sleep_is_set_and_cleared_by_checkpoints(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    wake = T0 + timedelta(hours=2)

    await store.checkpoint(run_id, "wrk_a", [step(1, "sleep")], Sleep(wake), T0)
    parked = await store.get_run(run_id)
    assert (parked.status, parked.wake_at, parked.available_at, parked.owner_id) == (
        RunStatus.SLEEPING,
        wake,
        wake,
        None,
    )

    await store.claim_run(run_id, "wrk_a", None, wake)
    await store.checkpoint(run_id, "wrk_a", [], Woke(), wake)
    assert (await store.get_run(run_id)).wake_at is None


async def test_rollback_wins_only_over_a_recorded_rollback_status(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [], StartRollback(), T0)

    end = EndRollback(RunStatus.FAILED, END)
    await store.checkpoint(run_id, "wrk_a", [], end, END)

    assert (await store.get_run(run_id)).status is RunStatus.FAILED


async def test_a_cancel_never_wins_over_compensation_failed(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [], StartRollback(cancel=True), T0)

    await store.checkpoint(
        run_id, "wrk_a", [], EndRollback(RunStatus.COMPENSATION_FAILED, END), END
    )

    assert (await store.get_run(run_id)).status is RunStatus.COMPENSATION_FAILED


async def test_a_cancel_wins_over_failed_at_the_rollback_s_end(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [], StartRollback(cancel=True), T0)

    await store.checkpoint(run_id, "wrk_a", [], EndRollback(RunStatus.FAILED, END), END)

    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.ended_at) == (RunStatus.CANCELED, None, END)


async def test_a_completion_clears_a_durable_sleep_s_wake_up_time(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(1, "nap")], Sleep(END), T0)
    await store.claim_run(run_id, "wrk_a", None, END)

    await store.checkpoint(run_id, "wrk_a", [], Complete(output="1", ended_at=END), END)

    record = await store.get_run(run_id)
    assert (record.status, record.wake_at) == (RunStatus.COMPLETED, None)


async def test_a_parked_retry_sleeps_released_until_it_is_due(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(1, "flaky", StepStatus.RUNNING)], Park(END), T0)

    record = await store.get_run(run_id)
    assert (record.status, record.available_at, record.wake_at, record.owner_id) == (
        RunStatus.SLEEPING,
        END,
        None,
        None,
    )


async def test_a_released_run_is_pending_and_due_when_said(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.control_run(run_id, RunAction.PAUSE, T0)  # a request the release answers

    assert await store.checkpoint(run_id, "wrk_a", [], Release(END), T0) is None

    record = await store.get_run(run_id)
    assert (record.status, record.available_at, record.owner_id, record.control) == (
        RunStatus.PENDING,
        END,
        None,
        None,
    )
