"""A workflow scheduled every second (6-field cron) whose one step logs its nominal time.

``overlap="allow"``: a firing starts its run even while the last one is queued behind
other work, so every nominal second that fires has a run to count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows._log import record

from runtime import (
    Schedule,
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
)

WORKFLOW = "beat"


@create_step("tick")
async def tick(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    await record(run_id=ctx.run_id, step="tick", phase="start", nominal=input["nominal"])
    await record(run_id=ctx.run_id, step="tick", phase="done", nominal=input["nominal"])
    return StepResponse(input)


def _input(nominal: datetime) -> dict[str, Any]:
    return {"nominal": nominal.isoformat()}


beat = create_workflow(
    WORKFLOW,
    lambda input: WorkflowResponse(tick(input)),
    schedule=Schedule("* * * * * *", name="every-second", input=_input, overlap="allow"),
)
