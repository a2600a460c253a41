"""A composition run whose recorded step was renamed by a code change fails instead of hanging."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from runtime.testing import ManualClock
from tests.regressions.support import wait_status

pytestmark = pytest.mark.anyio


async def _instant(inp: Any) -> dict[str, int]:
    return {"x": 1}


async def _forever(inp: Any) -> None:
    await anyio.sleep_forever()


def interrupted_v1() -> Any:
    """``w`` v1: step ``reserve-v1`` completes, then ``wait`` blocks (so it can be cut off)."""
    first = create_step("reserve-v1", _instant)
    wait = create_step("wait", _forever)
    return create_workflow("w", lambda i: WorkflowResponse(wait(first(i))))


def v2() -> Any:
    """``w`` after the code change: step 1 is now ``reserve-v2``."""
    first = create_step("reserve-v2", _instant)
    wait = create_step("wait", _instant)
    return create_workflow("w", lambda i: WorkflowResponse(wait(first(i))))


def assert_nondeterminism(record: Any) -> None:
    assert record.status is RunStatus.FAILED
    assert record.error is not None
    assert record.error.type == "NonDeterminismError"
    assert "reserve-v1" in record.error.message
    assert "reserve-v2" in record.error.message


async def start_and_interrupt(db_url: str) -> str:
    """Run v1 inline until its second step, then cut the caller off (a redeploy)."""
    v1 = interrupted_v1()
    async with Runtime(db_url, workflows=[v1], background=False) as rt:
        with anyio.move_on_after(0.3):
            await v1(rt.container).run(input={}, transaction_id="tx")
        (run,) = (await rt.workflows.list_runs()).runs
        steps = (await rt.workflows.get_run(run.id)).steps
        assert [s.name for s in steps] == ["reserve-v1"]
        return run.id


async def test_renamed_step_fails_the_run_when_resumed_inline(db_url: str) -> None:
    """Bug: resuming a composition run whose step #1 changed name raised
    NonDeterminismError out of the engine and left the run ``running`` forever; now the
    run ends ``failed`` with that error, naming both step names."""
    run_id = await start_and_interrupt(db_url)
    wf = v2()
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        with anyio.fail_after(2):
            result = await wf(rt.container).run(input={}, transaction_id="tx", throw_on_error=False)
        assert result.run_id == run_id
        assert result.status is RunStatus.FAILED
        assert result.errors[0].type == "NonDeterminismError"
        assert_nondeterminism(await rt.workflows.get_run(run_id))


async def test_renamed_step_fails_the_run_in_the_worker(db_url: str) -> None:
    """Bug: the worker resuming a composition run whose step #1 changed name crashed on
    NonDeterminismError and left the run ``running`` (held) forever; now it ends ``failed``."""
    run_id = await start_and_interrupt(db_url)
    async with Runtime(db_url, workflows=[v2()], interval=0.1) as rt:
        record = await wait_status(rt, run_id, *[s for s in RunStatus if s.terminal])
        assert_nondeterminism(record)
        assert record.owner_id is None


async def test_renamed_step_fails_a_run_parked_on_a_retry(db_url: str) -> None:
    """Bug: a composition run parked on a retry of step ``reserve-v1``, resumed by new code
    whose step #1 is ``reserve-v2``, stayed ``running`` forever; now it ends ``failed``."""

    async def flaky(inp: Any) -> StepResponse:
        raise RuntimeError("flaky")

    # A retry interval this long parks the run (``sleeping``, released) instead of
    # waiting in memory.
    first = create_step("reserve-v1", flaky, max_retries=3, retry_interval=10)
    v1 = create_workflow("w", lambda i: WorkflowResponse(first(i)))
    async with Runtime(db_url, workflows=[v1], interval=0.1) as rt:
        handle = await rt.workflows.run("w", {})
        parked = await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        assert [s.name for s in parked.steps] == ["reserve-v1"]
    # The new code's worker, at a time when the retry is due.
    clock = ManualClock(parked.available_at + timedelta(seconds=1))
    async with Runtime(db_url, workflows=[v2()], interval=0.1, clock=clock) as rt:
        record = await wait_status(rt, handle.run_id, *[s for s in RunStatus if s.terminal])
        assert_nondeterminism(record)
