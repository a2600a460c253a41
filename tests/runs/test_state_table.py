"""DESIGN 2.1's run-management table, cell by cell, in both styles: pause, resume, cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
import pytest

from runtime import (
    RunFailed,
    RunStatus,
    Runtime,
    StepStatus,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)
from runtime.testing import ManualClock
from tests.helpers.definitions import (
    LATER,
    PARKED,
    STYLES,
    Probe,
    Style,
    abc,
    paused_after_a,
    steps_of,
)
from tests.helpers.waiting import wait_ended, wait_status, wait_until

# -- pause ------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_pause_pending_then_resume_makes_it_due_now_and_it_completes(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow, delay=LATER)
        queued = await rt.workflows.get_run(handle.run_id)
        assert queued.status is RunStatus.PENDING
        assert queued.available_at > rt.clock.now() + timedelta(seconds=LATER - 60)

        record = await rt.workflows.pause(handle.run_id)
        assert (record.status, record.owner_id, record.control) == (RunStatus.PAUSED, None, None)

        record = await rt.workflows.resume(handle.run_id)
        assert record.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED)
        assert record.available_at <= rt.clock.now()
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "c"]


@pytest.mark.parametrize("style", STYLES)
async def test_pause_running_takes_effect_after_the_running_step(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        probe.hold("a")
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("a")
        record = await rt.workflows.pause(handle.run_id)
        assert (record.status, record.control) == (RunStatus.RUNNING, "pause")

        probe.release("a")
        record = await wait_status(rt, handle.run_id, RunStatus.PAUSED)
        assert steps_of(record) == [("a", StepStatus.COMPLETED)]
        assert (record.owner_id, record.control) == (None, None)
        await wait_until(lambda: rt.worker.in_flight == 0)
        await anyio.sleep(0.05)
        assert probe.calls == ["a"]
        assert await handle.status() is RunStatus.PAUSED

        await rt.workflows.resume(handle.run_id)
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "c"]


async def test_pause_sleeping_keeps_the_durable_wake_up_time_on_resume(db_url: str) -> None:
    clock = ManualClock()
    probe = Probe()
    flow = abc("durable", probe, nap=3600)
    async with Runtime(database=db_url, workflows=[flow], clock=clock) as rt:
        start = clock.now()
        handle = await rt.workflows.run(flow)
        record = await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        wake = start + timedelta(seconds=3600)
        assert record.wake_at == wake

        record = await rt.workflows.pause(handle.run_id)
        assert record.status is RunStatus.PAUSED
        clock.advance(600)
        record = await rt.workflows.resume(handle.run_id)
        assert record.status is RunStatus.PENDING
        assert record.available_at == wake

        rt.worker.poke()
        await anyio.sleep(0.05)
        assert await handle.status() is RunStatus.PENDING
        assert probe.calls == ["a"]

        clock.advance(3000)
        rt.worker.poke()
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "c"]


@pytest.mark.parametrize("style", STYLES)
async def test_pause_a_retry_parked_run_is_due_now_on_resume(db_url: str, style: Style) -> None:
    probe = Probe()
    probe.fail("b")
    flow = abc(style, probe, b_options=PARKED)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        record = await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        assert record.available_at > rt.clock.now() + timedelta(seconds=200)
        assert record.wake_at is None

        assert (await rt.workflows.pause(handle.run_id)).status is RunStatus.PAUSED
        record = await rt.workflows.resume(handle.run_id)
        assert record.available_at <= rt.clock.now()
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "b", "c"]
        record = await rt.workflows.get_run(handle.run_id)
        assert [s.attempts for s in record.steps] == [1, 2, 1]


@pytest.mark.parametrize("style", STYLES)
async def test_pause_twice_is_idempotent(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        queued = await rt.workflows.run(flow, delay=LATER)
        first = await rt.workflows.pause(queued.run_id)
        second = await rt.workflows.pause(queued.run_id)
        assert first.status is second.status is RunStatus.PAUSED

        probe.hold("a")
        running = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("a")
        assert (await rt.workflows.pause(running.run_id)).control == "pause"
        again = await rt.workflows.pause(running.run_id)
        assert (again.status, again.control) == (RunStatus.RUNNING, "pause")
        probe.release("a")
        await wait_status(rt, running.run_id, RunStatus.PAUSED)
        assert (await rt.workflows.pause(running.run_id)).status is RunStatus.PAUSED


# -- resume -----------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_resume_twice_is_idempotent(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow], background=False) as rt:
        handle = await rt.workflows.run(flow)
        await rt.workflows.pause(handle.run_id)
        first = await rt.workflows.resume(handle.run_id)
        second = await rt.workflows.resume(handle.run_id)
        assert first.status is second.status is RunStatus.PENDING
        assert second.available_at == first.available_at
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        assert await rt.workflows.run(flow) is not None  # the worker is up
        record = await wait_ended(rt, handle.run_id)
        assert record.status is RunStatus.COMPLETED


@pytest.mark.parametrize("style", STYLES)
async def test_resume_of_a_running_run_withdraws_a_pending_pause(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        probe.hold("a")
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("a")
        assert (await rt.workflows.pause(handle.run_id)).control == "pause"
        record = await rt.workflows.resume(handle.run_id)
        assert (record.status, record.control) == (RunStatus.RUNNING, None)
        probe.release("a")
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "c"]


# -- cancel -----------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_cancel_pending_with_nothing_to_undo_is_canceled_at_once(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow, delay=LATER)
        record = await rt.workflows.cancel(handle.run_id)
        assert record.status is RunStatus.CANCELED
        assert record.ended_at is not None
        assert record.error is not None and record.error.type == "Canceled"
        with pytest.raises(RunFailed) as info:
            await handle.result(timeout=5)
        assert info.value.status == "canceled"
        assert probe.calls == []


@pytest.mark.parametrize("style", STYLES)
async def test_cancel_running_compensates_after_the_running_step(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        probe.hold("b")
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("b")
        record = await rt.workflows.cancel(handle.run_id)
        assert (record.status, record.control) == (RunStatus.RUNNING, "cancel")
        probe.release("b")
        record = await wait_ended(rt, handle.run_id)
        assert record.status is RunStatus.CANCELED
        assert probe.calls == ["a", "b", "undo b", "undo a"]
        assert steps_of(record) == [
            ("a", StepStatus.COMPENSATED),
            ("b", StepStatus.COMPENSATED),
        ]
        with pytest.raises(RunFailed, match="canceled"):
            await handle.result(timeout=5)


async def test_cancel_a_durable_sleep_compensates_what_was_done(db_url: str) -> None:
    probe = Probe()
    flow = abc("durable", probe, nap=LATER)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        record = await rt.workflows.cancel(handle.run_id)
        assert record.status in (RunStatus.COMPENSATING, RunStatus.CANCELED)
        record = await wait_ended(rt, handle.run_id)
        assert record.status is RunStatus.CANCELED
        assert probe.calls == ["a", "undo a"]
        assert steps_of(record)[0] == ("a", StepStatus.COMPENSATED)


@pytest.mark.parametrize("style", STYLES)
async def test_cancel_a_retry_parked_run_compensates_what_was_done(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    probe.fail("b")
    flow = abc(style, probe, b_options=PARKED)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        await rt.workflows.cancel(handle.run_id)
        record = await wait_ended(rt, handle.run_id)
        assert record.status is RunStatus.CANCELED
        assert probe.calls == ["a", "b", "undo a"]
        assert steps_of(record)[0] == ("a", StepStatus.COMPENSATED)


@pytest.mark.parametrize("style", STYLES)
async def test_cancel_paused_compensates_what_was_done(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        run_id = await paused_after_a(rt, flow, probe)
        record = await rt.workflows.cancel(run_id)
        assert record.status in (RunStatus.COMPENSATING, RunStatus.CANCELED)
        record = await wait_ended(rt, run_id)
        assert record.status is RunStatus.CANCELED
        assert probe.calls == ["a", "undo a"]
        assert steps_of(record) == [("a", StepStatus.COMPENSATED)]


@pytest.mark.parametrize("style", STYLES)
async def test_cancel_while_compensating_ends_canceled_rather_than_failed(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    probe.fail("c")
    probe.hold("undo b")
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("undo b")
        assert await handle.status() is RunStatus.COMPENSATING
        record = await rt.workflows.cancel(handle.run_id)
        assert record.status is RunStatus.COMPENSATING
        probe.release("undo b")
        record = await wait_ended(rt, handle.run_id)
        assert probe.calls == ["a", "b", "c", "undo b", "undo a"]
        assert record.status is RunStatus.CANCELED


class Levers:
    """Records compensations; the ``last`` step signals it started, then waits for a gate."""

    def __init__(self) -> None:
        self.undone: list[Any] = []
        self.started = anyio.Event()
        self.gate = anyio.Event()

    def steps(self) -> tuple[Any, Any]:
        levers = self

        @create_step("first")
        async def first(inp: Any) -> dict[str, str]:
            return {"first": "done"}

        @first.compensate
        async def undo_first(ci: Any) -> None:
            levers.undone.append(ci)

        @create_step("last")
        async def last(inp: Any) -> dict[str, str]:
            levers.started.set()
            await levers.gate.wait()
            return {"last": "done"}

        @last.compensate
        async def undo_last(ci: Any) -> None:
            levers.undone.append(ci)

        return first, last


def composition_flow(levers: Levers) -> Any:
    first, last = levers.steps()
    return create_workflow("late-cancel", lambda i: WorkflowResponse(last(first(i))))


def durable_flow(levers: Levers) -> Any:
    first, last = levers.steps()

    @workflow(name="late-cancel")
    async def flow(ctx: WorkflowContext) -> Any:
        await ctx.step(first, {})
        return await ctx.step(last, {})

    return flow


@pytest.mark.parametrize("make", [composition_flow, durable_flow], ids=["composition", "durable"])
async def test_cancel_during_the_last_step_is_obeyed(db_url: str, make: Any) -> None:
    """Bug: a cancel accepted while the run's last step ran was ignored (the request came
    back with the last checkpoint, after the final between-steps check): the run ended
    ``completed`` and nothing was compensated; now it rolls back and ends ``canceled``."""
    levers = Levers()
    async with Runtime(db_url, workflows=[make(levers)], interval=0.1) as rt:
        handle = await rt.workflows.run("late-cancel", {})
        with anyio.fail_after(2):
            await levers.started.wait()
        accepted = await rt.workflows.cancel(handle.run_id)
        assert accepted.status is RunStatus.RUNNING
        assert accepted.control == "cancel"
        levers.gate.set()
        record = await wait_status(
            rt, handle.run_id, *[s for s in RunStatus if s.terminal], timeout=2.5
        )
        assert record.status is RunStatus.CANCELED
        # Every completed step is undone, the last one first.
        assert levers.undone == [{"last": "done"}, {"first": "done"}]


async def test_a_failure_outside_a_step_with_a_cancel_pending_ends_canceled(db_url: str) -> None:
    """A cancel that lands after the last step, before the workflow's code fails between
    steps, is obeyed as it is when a step fails: the run is compensated and ends canceled
    (with the failure as its error)."""
    reached, go = anyio.Event(), anyio.Event()
    undone: list[str] = []

    async def a() -> str:
        return "a"

    async def undo(_: Any) -> None:
        undone.append("a")

    @workflow(name="race")
    async def race(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("a", a, compensate=undo)
        reached.set()
        await go.wait()
        raise ValueError("boom outside a step")

    async with Runtime(database=db_url, workflows=[race]) as rt:
        handle = await rt.workflows.run("race")
        with anyio.fail_after(5):
            await reached.wait()
            await rt.workflows.cancel(handle.run_id)
            go.set()
            record = await rt.workflows.wait(handle.run_id)
    assert record.status is RunStatus.CANCELED
    assert undone == ["a"]
    assert record.error is not None
    assert (record.error.type, record.error.message) == ("ValueError", "boom outside a step")
