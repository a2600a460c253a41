"""A workflow scheduled every second (6-field cron) whose one step logs its nominal time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows._chaoslog import nonce, record

from runtime import (
    Schedule,
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
)

WORKFLOW = "chaos-beat"


@create_step("beat")
async def beat(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    where = {"kind": "step", "run_id": ctx.run_id, "step": "beat", "nominal": input["nominal"]}
    await record(**where, phase="start")
    token = nonce()
    await record(**where, phase="done", nonce=token)
    return StepResponse({"nominal": input["nominal"], "nonce": token})


def _input(nominal: datetime) -> dict[str, Any]:
    return {"nominal": nominal.isoformat()}


chaos_beat = create_workflow(
    WORKFLOW,
    lambda input: WorkflowResponse(beat(input)),
    schedule=Schedule("* * * * * *", name="every-second", input=_input),
)
