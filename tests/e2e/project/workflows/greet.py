"""A slowish three-step workflow that writes every step execution to a log that survives SIGKILL.

Each step appends ``{"pid", "run_id", "step", "phase"}`` to ``execution.log`` in
the project folder, once when it starts (``phase: "start"``) and once when its
work is done (``"done"``), each line flushed and fsynced before the step goes
on. After a process is killed, the log still tells which step executions
happened, in which process, however far the database got.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio

from runtime import StepContext, StepResponse, WorkflowResponse, create_step, create_workflow

LOG = Path(__file__).resolve().parents[1] / "execution.log"
STEP_SECONDS = 0.05
"""How long each step works: long enough for a test to kill the process mid-way."""


def record(**fields: Any) -> None:
    """Append one line to the execution log and make sure it is on disk."""
    # Blocking on purpose: the line must be on disk before the step goes on.
    with LOG.open("a") as log:
        log.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")
        log.flush()
        os.fsync(log.fileno())


async def _work(step: str, ctx: StepContext) -> None:
    record(run_id=ctx.run_id, step=step, phase="start")
    await anyio.sleep(STEP_SECONDS)
    record(run_id=ctx.run_id, step=step, phase="done")


@create_step("compose")
async def compose(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    await _work("compose", ctx)
    return StepResponse(f"Hello {input['name']}")


@create_step("send")
async def send(greeting: str, ctx: StepContext) -> StepResponse:
    await _work("send", ctx)
    return StepResponse({"sent": greeting})


@create_step("archive")
async def archive(sent: dict[str, Any], ctx: StepContext) -> StepResponse:
    await _work("archive", ctx)
    return StepResponse({**sent, "archived": True})


def greet_flow(input: Any) -> WorkflowResponse:
    return WorkflowResponse(archive(send(compose(input))))


greet = create_workflow("greet", greet_flow)
