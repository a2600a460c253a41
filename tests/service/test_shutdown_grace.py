"""Shutdown: what is still running when the grace period ends is cut off, and not lost."""

from __future__ import annotations

import anyio

from runtime import RunHandle, RunStatus, Runtime, create_step, create_workflow


async def test_a_step_still_running_after_the_grace_period_is_cut_off_and_resumed_later(
    db_url: str,
) -> None:
    entered = anyio.Event()
    calls: list[str] = []

    @create_step("stuck")
    async def stuck() -> str:
        calls.append("stuck")
        if len(calls) == 1:
            entered.set()
            await anyio.sleep_forever()  # ignores the shutdown: only cancellation stops it
        return "done"

    workflow = create_workflow("stubborn", lambda: stuck())
    async with Runtime(database=db_url, workflows=[workflow]) as rt:
        handle = await rt.workflows.run("stubborn")
        with anyio.fail_after(5):
            await entered.wait()
        with anyio.fail_after(5):
            assert await rt.drain(grace=0.1) is False  # the grace period ran out
    # The Runtime's exit cancelled the step and handed the run back, unowned.
    async with Runtime(database=db_url, workflows=[workflow]) as rt:
        assert await RunHandle(handle.run_id, rt.workflows).result(timeout=5) == "done"
        record = await rt.workflows.get_run(handle.run_id)
    assert record.status is RunStatus.COMPLETED
    assert calls == ["stuck", "stuck"]  # cut off once, run again: at least once
