"""Three steps per ``order.placed`` event; each step logs its start and its end.

Each step's output feeds the next, so a run only ends with the right result if every
step saw its predecessor's stored output.
"""

from __future__ import annotations

from typing import Any

from workflows._log import record

from runtime import StepContext, StepResponse, WorkflowResponse, create_step, create_workflow

WORKFLOW = "fulfil"


async def _logged(step: str, ctx: StepContext, output: dict[str, Any]) -> StepResponse:
    await record(run_id=ctx.run_id, step=step, phase="start")
    await record(run_id=ctx.run_id, step=step, phase="done")
    return StepResponse(output)


@create_step("reserve")
async def reserve(order: dict[str, Any], ctx: StepContext) -> StepResponse:
    return await _logged("reserve", ctx, {"n": order["n"], "reserved": True})


@create_step("charge")
async def charge(reserved: dict[str, Any], ctx: StepContext) -> StepResponse:
    return await _logged("charge", ctx, {"n": reserved["n"], "amount": reserved["n"] * 3})


@create_step("ship")
async def ship(charged: dict[str, Any], ctx: StepContext) -> StepResponse:
    return await _logged("ship", ctx, {"n": charged["n"], "total": charged["amount"]})


fulfil = create_workflow(WORKFLOW, lambda order: WorkflowResponse(ship(charge(reserve(order)))))
