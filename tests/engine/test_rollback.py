"""The rollback plan over stored records, and a compensation that cannot be found.

The plan is a pure function of a run's step records (what a resumed rollback has to go
on), tested as a table of the states crashes leave behind. A step owed a compensation the
rollback cannot find (the code lost it, a durable replay cannot learn it) ends the run
``compensation_failed`` with an error naming the step and the run; retried once the code
has it again, the rollback finishes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from runtime import (
    RunRecord,
    RunStatus,
    Runtime,
    StepStatus,
    WorkflowContext,
    create_step,
    create_workflow,
    workflow,
)
from runtime.container import Container
from runtime.engine.rollback import plan
from runtime.engine.run import Compensator, Run
from runtime.models import StepRecord
from runtime.sdk.steps import StepOptions
from tests.regressions.support import wait_status

pytestmark = pytest.mark.anyio

S = StepStatus


# -- the plan, as a table ------------------------------------------------------------------


async def _undo(value: Any) -> None:
    return None


_SAGA = create_workflow("saga", lambda: None)


def _state(
    rows: list[tuple[int, StepStatus, int | None, bool]], *, missing: tuple[int, ...] = ()
) -> Run:
    """A run of steps ``s<seq>``: (seq, status, completed_order, compensable) each.

    Every compensable step has a compensator, except those in ``missing``.
    """
    records = {
        seq: StepRecord(
            run_id="run_1",
            seq=seq,
            name=f"s{seq}",
            status=status,
            attempts=1,
            completed_order=order,
            compensable=compensable,
        )
        for seq, status, order, compensable in rows
    }
    now = datetime.now(UTC)
    record = RunRecord(
        id="run_1",
        workflow="saga",
        version=None,
        status=RunStatus.COMPENSATING,
        idempotency_key=None,
        available_at=now,
        created_at=now,
        updated_at=now,
    )
    # The plan reads only the run's records and compensators: no engine behind it.
    state = Run(
        None,  # type: ignore[arg-type]
        _SAGA,
        Container(),
        record,
        records.values(),
        interruptible=False,
    )
    for seq, _, _, compensable in rows:
        if compensable and seq not in missing:
            state.compensators[seq] = Compensator(_undo, StepOptions())
    return state


def _planned(state: Run) -> list[str]:
    """The plan as step names; ``?`` marks a compensation that cannot be found."""
    return [record.name + ("" if c is not None else "?") for c, record in plan(state)]


LINEAR = [
    (1, S.COMPLETED, 1, True),
    (2, S.COMPLETED, 2, True),
    (3, S.COMPLETED, 3, True),
    (4, S.COMPLETED, 4, True),
]


def _with(
    rows: list[tuple[int, StepStatus, int | None, bool]], **changes: StepStatus
) -> list[tuple[int, StepStatus, int | None, bool]]:
    """``rows`` with the status of some steps changed (``s2=S.COMPENSATED``)."""
    return [(seq, changes.get(f"s{seq}", st), order, c) for seq, st, order, c in rows]


FAILED_5 = [*LINEAR, (5, S.FAILED, None, True)]

PLANS = [
    ("nothing undone yet", FAILED_5, ["s5", "s4", "s3", "s2", "s1"]),
    # The failing step's own compensation cut off: still first (it was run last).
    ("own cut off", _with(FAILED_5, s5=S.COMPENSATING), ["s5", "s4", "s3", "s2", "s1"]),
    (
        "own failed, retried",
        _with(FAILED_5, s5=S.COMPENSATION_FAILED),
        ["s5", "s4", "s3", "s2", "s1"],
    ),
    ("own done", _with(FAILED_5, s5=S.COMPENSATED), ["s4", "s3", "s2", "s1"]),
    (
        "own cut off, then a later one",
        _with(FAILED_5, s5=S.COMPENSATING, s4=S.COMPENSATED, s3=S.COMPENSATING),
        ["s5", "s3", "s2", "s1"],
    ),
    (
        "one cut off",
        _with(FAILED_5, s5=S.COMPENSATED, s4=S.COMPENSATED, s3=S.COMPENSATING),
        ["s3", "s2", "s1"],
    ),
    (
        "all done",
        _with(
            FAILED_5,
            s1=S.COMPENSATED,
            s2=S.COMPENSATED,
            s3=S.COMPENSATED,
            s4=S.COMPENSATED,
            s5=S.COMPENSATED,
        ),
        [],
    ),
    # Reverse order of completion, not of position.
    (
        "completion order",
        [(1, S.COMPLETED, 2, True), (2, S.COMPLETED, 1, True), (3, S.FAILED, None, True)],
        ["s3", "s1", "s2"],
    ),
    # Parallel siblings that failed: their own compensations first, in step order.
    (
        "failed siblings",
        [
            (1, S.COMPLETED, 1, True),
            (2, S.FAILED, None, True),
            (3, S.COMPLETED, 2, True),
            (4, S.COMPENSATING, None, True),
        ],
        ["s2", "s4", "s3", "s1"],
    ),
    # Not compensated: no compensation, skipped, never finished, a durable sleep.
    (
        "nothing to undo",
        [
            (1, S.COMPLETED, 1, False),
            (2, S.SKIPPED, None, True),
            (3, S.COMPLETED, None, False),
            (4, S.COMPLETED, 2, True),
            (5, S.RUNNING, None, True),
        ],
        ["s4"],
    ),
    (
        "failed, no own compensation",
        [(1, S.COMPLETED, 1, True), (2, S.FAILED, None, False)],
        ["s1"],
    ),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [(r, e) for _, r, e in PLANS], ids=[name for name, _, _ in PLANS]
)
def test_the_plan_of_a_rollback_in_any_state(
    rows: list[tuple[int, StepStatus, int | None, bool]], expected: list[str]
) -> None:
    assert _planned(_state(rows)) == expected


def test_a_failure_let_through_is_not_compensated() -> None:
    # continue_on_permanent_failure: the step failed, the run went on; its own compensation
    # is not owed (composition marks its compensator so).
    state = _state(
        [(1, S.COMPLETED, 1, True), (2, S.FAILED, None, False), (3, S.FAILED, None, True)]
    )
    state.compensators[2] = Compensator(_undo, StepOptions(), own=False)
    assert _planned(state) == ["s3", "s1"]


def test_a_compensation_owed_but_not_found_is_planned_as_missing() -> None:
    rows = _with(FAILED_5, s5=S.COMPENSATED, s3=S.COMPENSATING)
    assert _planned(_state(rows, missing=(2, 3))) == ["s4", "s3?", "s2?", "s1"]
    # A record from before steps recorded it: marked compensating, so it had one.
    legacy = [(1, S.COMPLETED, 1, False), (2, S.COMPENSATING, 2, False)]
    assert _planned(_state(legacy)) == ["s2?"]


# -- a compensation that cannot be found ----------------------------------------------------


def _check_not_found(record: RunRecord, step: str, *, undone: str) -> None:
    assert record.status is RunStatus.COMPENSATION_FAILED, record
    statuses = {s.name: s.status for s in record.steps}
    assert statuses == {step: S.COMPENSATION_FAILED, undone: S.COMPENSATED}
    [lost] = [s for s in record.steps if s.name == step]
    assert lost.error is not None
    assert lost.error.type == "CompensationNotFound"
    assert f"the compensation of step {step!r} of run {record.id} cannot be found" in (
        lost.error.message
    )


async def test_a_compensation_the_code_lost_fails_the_run_and_retry_finishes_it(
    db_url: str,
) -> None:
    calls: list[str] = []

    async def release(value: Any) -> None:
        calls.append(f"release {value}")
        if len(calls) == 2:  # the first try fails: the run waits for a person
            raise RuntimeError("inventory service down")

    async def refuse(value: Any) -> None:
        raise RuntimeError("refused")

    async def cancel_label(value: Any) -> None:
        calls.append("cancel label")

    def define(with_compensation: bool) -> Any:
        reserve = create_step("reserve", lambda i: "res-1", release if with_compensation else None)
        ship = create_step("ship", refuse, cancel_label)
        return create_workflow("order", lambda i: ship(reserve(i)))

    async with Runtime(db_url, workflows=[define(True)]) as rt:
        handle = await rt.workflows.run("order", {})
        first = await wait_status(rt, handle.run_id, RunStatus.COMPENSATION_FAILED)
    assert {s.name: s.status for s in first.steps} == {
        "reserve": S.COMPENSATION_FAILED,
        "ship": S.COMPENSATED,
    }

    # A deploy drops reserve's compensation; an operator retries the rollback.
    async with Runtime(db_url, workflows=[define(False)]) as rt:
        await rt.workflows.retry(handle.run_id)
        lost = await wait_status(rt, handle.run_id, RunStatus.COMPENSATION_FAILED)
    _check_not_found(lost, "reserve", undone="ship")
    assert "the workflow's code gives this step no compensation" in lost.steps[0].error.message

    # The code has it again: the retried rollback finishes.
    async with Runtime(db_url, workflows=[define(True)]) as rt:
        await rt.workflows.retry(handle.run_id)
        done = await wait_status(rt, handle.run_id, RunStatus.FAILED)
    assert {s.name: s.status for s in done.steps} == {
        "reserve": S.COMPENSATED,
        "ship": S.COMPENSATED,
    }
    assert calls == ["cancel label", "release res-1", "release res-1"]


async def test_a_compensation_a_durable_replay_cannot_learn_fails_the_run(db_url: str) -> None:
    calls: list[str] = []

    async def release(value: Any) -> None:
        calls.append(f"release {value}")
        raise RuntimeError("inventory service down")

    def refuse() -> None:
        raise RuntimeError("refused")

    def cancel_label(value: Any) -> None:
        calls.append("cancel label")

    @workflow(name="order")
    async def v1(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("reserve", lambda: "res-1", compensate=release)
        await ctx.step("ship", refuse, compensate=cancel_label)

    @workflow(name="order")
    async def v2(ctx: WorkflowContext[Any]) -> None:
        # A deploy renamed the first step: the replay stops there, before "reserve".
        await ctx.step("reserve-items", lambda: "res-1", compensate=release)
        await ctx.step("ship", refuse, compensate=cancel_label)

    async with Runtime(db_url, workflows=[v1]) as rt:
        handle = await rt.workflows.run("order", {})
        await wait_status(rt, handle.run_id, RunStatus.COMPENSATION_FAILED)

    async with Runtime(db_url, workflows=[v2]) as rt:
        await rt.workflows.retry(handle.run_id)
        lost = await wait_status(rt, handle.run_id, RunStatus.COMPENSATION_FAILED)
    _check_not_found(lost, "reserve", undone="ship")
    message = lost.steps[0].error.message
    assert "replaying the workflow function ended before it: NonDeterminismError" in message
    assert calls == ["cancel label", "release res-1"]
