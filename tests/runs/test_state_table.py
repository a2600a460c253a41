"""DESIGN 2.1's run-management table, cell by cell, for both authoring styles."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from runtime import (
    Client,
    InvalidTransitionError,
    RunFailed,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    Runtime,
    StepStatus,
    SyncClient,
)
from runtime.testing import ManualClock
from tests.helpers.definitions import STYLES, Probe, Style, abc
from tests.helpers.waiting import wait_status, wait_until

TERMINAL = ("completed", "failed", "compensation_failed", "canceled")
LATER = 3600.0  # a delay that keeps a queued run away from the worker for the whole test
PARKED = {"max_retries": 1, "retry_interval": 600}  # a failed attempt parks the run sleeping


def steps_of(record: RunRecord) -> list[tuple[str, StepStatus]]:
    return [(s.name, s.status) for s in record.steps]


def now() -> datetime:
    return datetime.now(UTC)


async def ended(rt: Runtime, run_id: str) -> RunRecord:
    await rt.workflows.wait(run_id, timeout=5)
    return await rt.workflows.get_run(run_id)


async def paused_after_a(rt: Runtime, flow: Any, probe: Probe) -> str:
    """A run paused after its step ``a`` completed (``b`` not started)."""
    probe.hold("a")
    handle = await rt.workflows.run(flow)
    with anyio.fail_after(5):
        await probe.entered("a")
    await rt.workflows.pause(handle.run_id)
    probe.release("a")
    await wait_status(rt, handle.run_id, RunStatus.PAUSED)
    return handle.run_id


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
        assert queued.available_at > now() + timedelta(seconds=LATER - 60)

        record = await rt.workflows.pause(handle.run_id)
        assert (record.status, record.owner_id, record.control) == (RunStatus.PAUSED, None, None)

        record = await rt.workflows.resume(handle.run_id)
        assert record.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED)
        assert record.available_at <= now()
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
        await wait_until(lambda: _equals(rt.worker.in_flight, 0))
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
        assert record.available_at > now() + timedelta(seconds=200)
        assert record.wake_at is None

        assert (await rt.workflows.pause(handle.run_id)).status is RunStatus.PAUSED
        record = await rt.workflows.resume(handle.run_id)
        assert record.available_at <= now()
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
async def test_resume_twice_is_idempotent(db_path: Path, style: Style) -> None:
    db_url = f"sqlite:///{db_path}"
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
        record = await ended(rt, handle.run_id)
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
        record = await ended(rt, handle.run_id)
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
        record = await ended(rt, handle.run_id)
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
        record = await ended(rt, handle.run_id)
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
        record = await ended(rt, run_id)
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
        record = await ended(rt, handle.run_id)
        assert probe.calls == ["a", "b", "c", "undo b", "undo a"]
        assert record.status is RunStatus.CANCELED


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
        failed = await ended(rt, handle.run_id)
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
        assert (await ended(rt, handle.run_id)).status is RunStatus.CANCELED

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
        stuck = await ended(rt, handle.run_id)
        assert stuck.status is RunStatus.COMPENSATION_FAILED
        assert probe.calls == ["a", "b", "c", "undo b"]
        assert steps_of(stuck) == [
            ("a", StepStatus.COMPLETED),
            ("b", StepStatus.COMPENSATION_FAILED),
            ("c", StepStatus.FAILED),
        ]

        record = await rt.workflows.retry(handle.run_id)
        assert record.status in (RunStatus.COMPENSATING, RunStatus.FAILED)
        record = await ended(rt, handle.run_id)
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
    assert (await ended(rt, handle.run_id)).status.value == status
    return handle.run_id


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("status", TERMINAL)
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


# -- the same table through Client, SyncClient and the CLI ----------------------------------


async def test_client_applies_the_same_table(db_url: str) -> None:
    probe = Probe()
    flow = abc("durable", probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt, Client(db_url) as client:
        handle = await client.run("abc", delay=LATER)
        assert (await client.pause(handle.run_id)).status is RunStatus.PAUSED
        assert (await client.pause(handle.run_id)).status is RunStatus.PAUSED
        record = await client.resume(handle.run_id)
        assert record.status is RunStatus.PENDING
        assert record.available_at <= now()
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        with pytest.raises(InvalidTransitionError, match=handle.run_id):
            await client.pause(handle.run_id)
        with pytest.raises(InvalidTransitionError, match="completed"):
            await client.cancel(handle.run_id)
        with pytest.raises(InvalidTransitionError, match="completed"):
            await client.retry(handle.run_id)
        with pytest.raises(RunNotFoundError):
            await client.resume("run_missing")

        probe.hold("a")
        running = await client.run("abc")
        with anyio.fail_after(5):
            await probe.entered("a", times=2)
        assert (await client.cancel(running.run_id)).control == "cancel"
        probe.release("a")
        record = await ended(rt, running.run_id)
        assert record.status is RunStatus.CANCELED
        assert probe.calls[-2:] == ["a", "undo a"]


async def test_sync_client_applies_the_same_table(db_url: str) -> None:
    probe = Probe()
    probe.fail("c")
    flow = abc("composition", probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        assert (await ended(rt, handle.run_id)).status is RunStatus.FAILED

        def manage() -> list[Any]:
            with SyncClient(db_url) as client:
                outcomes: list[Any] = []
                for action in (client.pause, client.resume, client.cancel):
                    try:
                        action(handle.run_id)
                    except InvalidTransitionError as exc:
                        outcomes.append(str(exc))
                outcomes.append(client.retry(handle.run_id).status)
                with pytest.raises(RunNotFoundError):
                    client.pause("run_missing")
                return outcomes

        outcomes = await anyio.to_thread.run_sync(manage)
        assert len(outcomes) == 4
        assert all(handle.run_id in o and "failed" in o for o in outcomes[:3])
        assert outcomes[3] in (RunStatus.PENDING, RunStatus.RUNNING)
        assert await handle.result(timeout=5) == ["a", "b", "c"]


def runtime_cli(cwd: Path, db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "--database", f"sqlite:///{db_path}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_applies_the_same_table_with_exit_codes(
    db_path: Path, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{db_path}"
    probe = Probe()
    flow = abc("durable", probe)

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await anyio.to_thread.run_sync(lambda: runtime_cli(tmp_path, db_path, *args))

    async with Runtime(database=db_url, workflows=[flow]) as rt:
        queued = await rt.workflows.run(flow, delay=LATER)
        done = await rt.workflows.run(flow)
        assert await done.result(timeout=5) == ["a", "b", "c"]

        paused = await cli("runs", "pause", queued.run_id)
        assert (paused.returncode, paused.stdout.strip()) == (0, f"{queued.run_id}: paused")
        assert (await cli("runs", "pause", queued.run_id)).returncode == 0
        assert (await rt.workflows.get_run(queued.run_id)).status is RunStatus.PAUSED

        refused = await cli("runs", "pause", done.run_id)
        assert refused.returncode == 1
        assert done.run_id in refused.stderr and "completed" in refused.stderr
        assert (await cli("runs", "retry", queued.run_id)).returncode == 1

        unknown = await cli("runs", "cancel", "run_missing")
        assert unknown.returncode == 3
        assert "run_missing" in unknown.stderr

        resumed = await cli("runs", "resume", queued.run_id)
        assert resumed.returncode == 0
        assert await queued.result(timeout=5) == ["a", "b", "c"]


async def _equals(value: int, expected: int) -> bool:
    return value == expected
