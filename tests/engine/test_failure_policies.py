"""A durable step's ``permanent_failure`` passes its ``compensate_input`` to its compensation."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    RunFailed,
    RunStatus,
    Runtime,
    StepResponse,
    WorkflowContext,
    create_step,
    workflow,
)

pytestmark = pytest.mark.anyio


async def test_permanent_failure_compensate_input_reaches_the_compensation(db_url: str) -> None:
    """Bug: in a durable workflow, ``permanent_failure(msg, compensate_input=X)`` dropped X
    (only the composition path stored it), so the failed step's own compensation never
    got it on rollback; now the compensation receives X."""
    got: list[Any] = []

    @create_step("charge")
    async def charge(inp: Any) -> StepResponse:
        return StepResponse.permanent_failure("card declined", compensate_input={"hold": "h1"})

    @charge.compensate
    async def release(ci: Any) -> None:
        got.append(ci)

    @workflow
    async def pay(ctx: WorkflowContext) -> dict[str, Any]:
        await ctx.step(charge, {"amount": 5})
        return {}

    async with Runtime(db_url, workflows=[pay], interval=0.1) as rt:
        handle = await rt.workflows.run("pay", {})
        with pytest.raises(RunFailed):
            await handle.result(timeout=2)
        record = await rt.workflows.get_run(handle.run_id)
    assert record.status is RunStatus.FAILED
    assert record.error is not None
    assert record.error.type == "PermanentFailure"
    assert "card declined" in record.error.message
    assert got == [{"hold": "h1"}]
