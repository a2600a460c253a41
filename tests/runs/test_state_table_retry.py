"""DESIGN 2.1's table, continued: retry, and what ended and active runs refuse."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import pytest

from runtime import (
    InvalidTransitionError,
    RunNotFoundError,
    RunStatus,
    Runtime,
    StepStatus,
)
from runtime.models import TERMINAL
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
from tests.helpers.waiting import wait_ended, wait_status

# -- retry ------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_retry_failed_reruns_from_the_first_step_without_a_valid_checkpoint(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    probe.fail("c")
    flow = abc(style, probe, undo_b=False)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        failed = await wait_ended(rt, handle.run_id)
        assert failed.status is RunStatus.FAILED
        assert steps_of(failed) == [
            ("a", StepStatus.COMPENSATED),
            ("b", StepStatus.COMPLETED),
            ("c", StepStatus.FAILED),
        ]
        assert probe.calls == ["a", "b", "c", "undo a"]

        record = await rt.workflows.retry(handle.run_id)
        assert record.error is None and record.ended_at is None
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "c", "undo a", "a", "c"]
        done = await rt.workflows.get_run(handle.run_id)
        assert done.status is RunStatus.COMPLETED
        assert steps_of(done) == [
            ("a", StepStatus.COMPLETED),
            ("b", StepStatus.COMPLETED),
            ("c", StepStatus.COMPLETED),
        ]


@pytest.mark.parametrize("style", STYLES)
async def test_retry_canceled_runs_the_undone_steps_again(db_url: str, style: Style) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        probe.hold("b")
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("b")
        await rt.workflows.cancel(handle.run_id)
        probe.release("b")
        assert (await wait_ended(rt, handle.run_id)).status is RunStatus.CANCELED

        record = await rt.workflows.retry(handle.run_id)
        assert record.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED)
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "undo b", "undo a", "a", "b", "c"]

        queued = await rt.workflows.run(flow, delay=LATER)
        await rt.workflows.cancel(queued.run_id)
        await rt.workflows.retry(queued.run_id)
        assert await queued.result(timeout=5) == ["a", "b", "c"]


@pytest.mark.parametrize("style", STYLES)
async def test_retry_compensation_failed_retries_the_failed_compensations(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    probe.fail("c")
    probe.fail("undo b")
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        stuck = await wait_ended(rt, handle.run_id)
        assert stuck.status is RunStatus.COMPENSATION_FAILED
        assert probe.calls == ["a", "b", "c", "undo b"]
        assert steps_of(stuck) == [
            ("a", StepStatus.COMPLETED),
            ("b", StepStatus.COMPENSATION_FAILED),
            ("c", StepStatus.FAILED),
        ]

        record = await rt.workflows.retry(handle.run_id)
        assert record.status in (RunStatus.COMPENSATING, RunStatus.FAILED)
        record = await wait_ended(rt, handle.run_id)
        assert record.status is RunStatus.FAILED
        assert probe.calls == ["a", "b", "c", "undo b", "undo b", "undo a"]
        assert steps_of(record) == [
            ("a", StepStatus.COMPENSATED),
            ("b", StepStatus.COMPENSATED),
            ("c", StepStatus.FAILED),
        ]
        assert record.error is not None
        assert (record.error.step, record.error.message) == ("c", "c broke")


# -- terminal statuses refuse everything but retry ---------------------------------------


async def terminal_run(rt: Runtime, flow: Any, probe: Probe, status: str) -> str:
    """A run of ``flow`` that ended ``status``."""
    if status == "canceled":
        handle = await rt.workflows.run(flow, delay=LATER)
        await rt.workflows.cancel(handle.run_id)
        return handle.run_id
    if status in ("failed", "compensation_failed"):
        probe.fail("c")
    if status == "compensation_failed":
        probe.fail("undo b")
    handle = await rt.workflows.run(flow)
    assert (await wait_ended(rt, handle.run_id)).status.value == status
    return handle.run_id


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("status", sorted(s.value for s in TERMINAL))
async def test_a_terminal_run_refuses_pause_resume_and_cancel(
    db_url: str, style: Style, status: str
) -> None:
    probe = Probe()
    flow = abc(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        run_id = await terminal_run(rt, flow, probe, status)
        before = await rt.workflows.get_run(run_id)
        for action in (rt.workflows.pause, rt.workflows.resume, rt.workflows.cancel):
            with pytest.raises(InvalidTransitionError) as info:
                await action(run_id)
            assert run_id in str(info.value)
            assert status in str(info.value)
            assert isinstance(info.value, ValueError)
        after = await rt.workflows.get_run(run_id)
        assert (after.status, after.updated_at, steps_of(after)) == (
            before.status,
            before.updated_at,
            steps_of(before),
        )


async def active_run(rt: Runtime, flow: Any, probe: Probe, status: str) -> str:
    """A run of ``flow`` held in ``status`` (until the probe's holds are released)."""
    if status == "pending":
        return (await rt.workflows.run(flow, delay=LATER)).run_id
    if status == "paused":
        return await paused_after_a(rt, flow, probe)
    if status == "running":
        probe.hold("a")
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("a")
        return handle.run_id
    if status == "compensating":
        probe.fail("c")
        probe.hold("undo b")
        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await probe.entered("undo b")
        return handle.run_id
    assert status == "sleeping"
    probe.fail("b")
    handle = await rt.workflows.run(flow)
    await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
    return handle.run_id


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("status", ["pending", "running", "sleeping", "paused", "compensating"])
async def test_retry_of_a_run_that_has_not_ended_is_refused(
    db_url: str, style: Style, status: str
) -> None:
    probe = Probe()
    flow = abc(style, probe, b_options=PARKED)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        run_id = await active_run(rt, flow, probe, status)
        assert (await rt.workflows.get_run(run_id)).status.value == status
        with pytest.raises(InvalidTransitionError) as info:
            await rt.workflows.retry(run_id)
        assert run_id in str(info.value) and status in str(info.value)
        assert (await rt.workflows.get_run(run_id)).status.value == status
        for held in ("a", "undo b"):
            if held in probe._gates:
                probe.release(held)


async def test_unknown_runs_are_reported_as_not_found(db_url: str) -> None:
    async with Runtime(database=db_url) as rt:
        for action in (
            rt.workflows.pause,
            rt.workflows.resume,
            rt.workflows.cancel,
            rt.workflows.retry,
        ):
            with pytest.raises(RunNotFoundError, match="run_missing"):
                await action("run_missing")
