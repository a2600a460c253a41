"""Plain (sync) step functions run off the event loop, and their ``timeout`` is enforced."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    Runtime,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)

pytestmark = pytest.mark.anyio


class Ticker:
    """An async task that counts ticks; a blocked event loop stops the count."""

    def __init__(self) -> None:
        self.ticks = 0
        self.during: list[int] = []

    async def run(self) -> None:
        while True:
            await anyio.sleep(0.01)
            self.ticks += 1

    def blocking(self, *_: Any) -> str:
        """A sync step body: blocks its thread for 0.5 s and notes the ticks meanwhile."""
        before = self.ticks
        time.sleep(0.5)
        self.during.append(self.ticks - before)
        return "slept"


def composition_flow(ticker: Ticker) -> Any:
    step = create_step("blocking", ticker.blocking)
    return create_workflow("sync-step", lambda i: WorkflowResponse(step(i)))


def durable_flow(ticker: Ticker) -> Any:
    @workflow(name="sync-step")
    async def flow(ctx: WorkflowContext) -> Any:
        return await ctx.step("blocking", ticker.blocking)

    return flow


@pytest.mark.parametrize("make", [composition_flow, durable_flow], ids=["composition", "durable"])
async def test_blocking_sync_step_does_not_block_the_loop(db_url: str, make: Any) -> None:
    """Bug: a sync step function was called on the event loop, so a ``time.sleep`` in it
    froze every other task (other runs, the heartbeat, timeouts); now it runs in a thread
    and a concurrent task keeps ticking."""
    ticker = Ticker()
    wf = make(ticker)
    async with (
        Runtime(db_url, workflows=[wf], background=False) as rt,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(ticker.run)
        with anyio.fail_after(2):
            result = await wf(rt.container).run(input={})
        tg.cancel_scope.cancel()
    assert result.status is RunStatus.COMPLETED
    assert result.result == "slept"
    # ~50 ticks of 10 ms fit in 0.5 s; a blocked loop would give 0.
    assert ticker.during[0] >= 10


async def test_sync_step_past_its_timeout_fails_promptly(db_url: str) -> None:
    """Bug: a sync step's ``timeout`` could not interrupt it (it blocked the loop, so the
    deadline was never checked until it returned, and then it counted as a success); now
    the attempt fails with StepTimeoutError well before the blocking call ends."""

    def stuck(inp: Any) -> str:
        time.sleep(0.6)
        return "too late"

    step = create_step("stuck", stuck, timeout=0.1)
    wf = create_workflow("sync-timeout", lambda i: WorkflowResponse(step(i)))
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        began = time.monotonic()
        with anyio.fail_after(2):
            result = await wf(rt.container).run(input={}, throw_on_error=False)
        elapsed = time.monotonic() - began
    assert result.status is RunStatus.FAILED
    assert result.errors[0].type == "StepTimeoutError"
    assert elapsed < 0.4
