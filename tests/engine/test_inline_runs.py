"""A run whose inline caller is cancelled mid-step is handed back instead of held forever."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime import RunStatus, Runtime, StepResponse, WorkflowResponse, create_step, create_workflow
from tests.regressions.support import wait_status

pytestmark = pytest.mark.anyio


def slow_workflow(calls: list[int], seconds: float) -> Any:
    @create_step("slow")
    async def slow(inp: Any, ctx: Any) -> StepResponse:
        calls.append(ctx.attempt)
        await anyio.sleep(seconds)
        return StepResponse({"ok": True})

    return create_workflow("stuck-wf", lambda i: WorkflowResponse(slow(i)))


async def test_cut_off_inline_run_is_released_pending_and_unowned(db_url: str) -> None:
    """Bug: a cancelled ``wf(container).run(...)`` left its run ``running``, owned by the
    live worker, so no one would ever resume it; now it is handed back ``pending``."""
    calls: list[int] = []
    wf = slow_workflow(calls, 1.0)
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        with anyio.move_on_after(0.2) as scope:
            await wf(rt.container).run(input={}, transaction_id="t1")
        assert scope.cancelled_caught
        (run,) = (await rt.workflows.list_runs()).runs
        assert run.status is RunStatus.PENDING
        assert run.owner_id is None
        assert calls == [1]


async def test_cut_off_inline_run_completes_on_its_own(db_url: str) -> None:
    """Bug: a run whose caller was cancelled mid-step stayed ``running`` forever; now the
    worker takes it up again and it completes, the step running at most twice."""
    calls: list[int] = []
    wf = slow_workflow(calls, 1.0)
    async with Runtime(db_url, workflows=[wf], interval=0.1) as rt:
        with anyio.move_on_after(0.2) as scope:
            await wf(rt.container).run(input={}, transaction_id="t1")
        assert scope.cancelled_caught
        (run,) = (await rt.workflows.list_runs()).runs
        # Handed back: unowned, or already being driven again by this runtime's worker.
        assert run.owner_id is None or run.id in rt.worker.engine.active_runs
        done = await wait_status(rt, run.id, *[s for s in RunStatus if s.terminal], timeout=2.5)
        assert done.status is RunStatus.COMPLETED
        assert done.output == {"ok": True}
        assert done.owner_id is None
        assert 1 <= len(calls) <= 2
