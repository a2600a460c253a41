"""A cancel that arrives while the last step runs rolls the run back and ends it ``canceled``."""

from __future__ import annotations

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
from tests.helpers.waiting import wait_status

pytestmark = pytest.mark.anyio


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
