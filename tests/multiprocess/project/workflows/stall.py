"""Three steps, the middle one held until the test lets it go: the process to kill mid-step.

``hold`` logs ``start``, then ``reached``, then waits until the file ``release-TOKEN``
exists in the project folder (``TOKEN``: the run's input); the test SIGKILLs (or freezes)
the process holding it there, creates the file, and watches another process finish the
run.
"""

from __future__ import annotations

from typing import Any

import anyio
from workflows._log import FOLDER, record

from runtime import StepContext, StepResponse, WorkflowResponse, create_step, create_workflow

WORKFLOW = "stall"


@create_step("before")
async def before(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    await record(run_id=ctx.run_id, step="before", phase="start")
    await record(run_id=ctx.run_id, step="before", phase="done")
    return StepResponse({"token": input["token"], "before": True})


@create_step("hold")
async def hold(data: dict[str, Any], ctx: StepContext) -> StepResponse:
    await record(run_id=ctx.run_id, step="hold", phase="start")
    await record(run_id=ctx.run_id, step="hold", phase="reached")
    while not (FOLDER / f"release-{data['token']}").exists():  # noqa: ASYNC110 - the test process creates it
        await anyio.sleep(0.02)
    await record(run_id=ctx.run_id, step="hold", phase="done")
    return StepResponse({**data, "held": True})


@create_step("after")
async def after(data: dict[str, Any], ctx: StepContext) -> StepResponse:
    await record(run_id=ctx.run_id, step="after", phase="start")
    await record(run_id=ctx.run_id, step="after", phase="done")
    return StepResponse({**data, "after": True})


stall = create_workflow(WORKFLOW, lambda input: WorkflowResponse(after(hold(before(input)))))
