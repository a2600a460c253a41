"""``runtime.testing``: ``ManualClock`` (virtual time) and ``wait_for_status``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from runtime import (
    DefinitionError,
    RunNotFoundError,
    RunStatus,
    Runtime,
    WorkflowContext,
    workflow,
)
from runtime.testing import ManualClock, wait_for_status

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_now_is_aware_utc_and_settable() -> None:
    clock = ManualClock(datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == T0 and clock.now().tzinfo is UTC
    clock.advance(90)
    assert clock.now() == T0 + timedelta(seconds=90)
    clock.set(T0)
    assert clock.now() == T0
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 5, 1))
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


async def test_sleepers_wake_when_time_passes_their_deadline() -> None:
    clock = ManualClock(T0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, "short", 10)
            tg.start_soon(sleeper, "long", 60)
            await clock.wait_sleepers(2)
            assert clock.next_deadline == T0 + timedelta(seconds=10)
            clock.advance(9.999)
            assert clock.sleepers == 2
            clock.advance(0.001)
            assert clock.sleepers == 1
            await clock.wait_sleepers(1)
            clock.set(T0 + timedelta(minutes=5))
    assert woke == ["short", "long"]
    assert clock.sleepers == 0


async def test_a_zero_sleep_returns_at_once_and_cancel_unparks() -> None:
    clock = ManualClock(T0)
    with anyio.fail_after(5):
        await clock.sleep(0)
        await clock.sleep(-3)
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.sleep, 30)
            await clock.wait_sleepers(1)
            tg.cancel_scope.cancel()
    assert clock.sleepers == 0


# -- wait_for_status ----------------------------------------------------------------------


async def test_wait_for_status_returns_the_run_once_parked_then_the_clock_wakes_it(
    db_url: str,
) -> None:
    clock = ManualClock(T0)

    @workflow
    async def napper(ctx: WorkflowContext[Any]) -> str:
        await ctx.sleep("nap", 3600)
        return "woke"

    async with Runtime(database=db_url, workflows=[napper], clock=clock) as rt:
        handle = await rt.workflows.run(napper)
        with anyio.fail_after(5):
            parked = await wait_for_status(rt.workflows, handle.run_id, RunStatus.SLEEPING)
        assert parked.status is RunStatus.SLEEPING
        assert parked.wake_at == T0 + timedelta(hours=1)
        assert [s.name for s in parked.steps] == ["nap"]

        clock.advance(3600)
        with anyio.fail_after(5):
            done = await wait_for_status(rt.workflows, handle.run_id, RunStatus.COMPLETED)
        assert done.output == "woke"


async def test_wait_for_status_refuses_no_status_and_an_unknown_run(db_url: str) -> None:
    async with Runtime(database=db_url) as rt:
        with pytest.raises(DefinitionError, match="at least one status"):
            await wait_for_status(rt.workflows, "run_nope")
        with pytest.raises(RunNotFoundError):
            await wait_for_status(rt.workflows, "run_nope", RunStatus.COMPLETED)
