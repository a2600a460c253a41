"""A five-step order saga, Medusa style (``create_workflow``), every step compensated.

The input says what goes wrong: ``fail_at`` (a step index, or ``None``) fails that
step for good, either at once (``fail_mode: "permanent"``, with a compensate input)
or by raising on both of its attempts (``"raise"``, after a retry); ``flaky`` (an
index) makes that step fail its first attempt only. With ``fail_at`` 2, 3 or 4 the
rollback runs 3, 4 or 5 compensations: the failing step's own, then the completed
steps' in reverse order. The last step stages an ``order.completed`` event.
"""

from __future__ import annotations

from typing import Any

from workflows._chaoslog import ChaosFailure, nonce, record, work

from runtime import (
    StepContext,
    StepDefinition,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
    transform,
)

WORKFLOW = "chaos-saga"
STEPS = ("reserve", "price", "charge", "pack", "ship")


def _chaos_step(index: int, name: str) -> StepDefinition:
    async def invoke(data: dict[str, Any], ctx: StepContext) -> StepResponse:
        order = data["order"]
        where = {"kind": "step", "run_id": ctx.run_id, "step": name}
        await record(**where, phase="start", attempt=ctx.attempt)
        await work()
        if order.get("fail_at") == index:
            await record(**where, phase="fail", attempt=ctx.attempt)
            if order.get("fail_mode") == "raise":
                raise ChaosFailure(f"{name} fails on every attempt")
            return StepResponse.permanent_failure(
                f"{name} fails for good", compensate_input={"step": name, "failed": True}
            )
        if order.get("flaky") == index and ctx.attempt == 1:
            await record(**where, phase="fail", attempt=ctx.attempt)
            raise ChaosFailure(f"{name} fails its first attempt")
        if index == len(STEPS) - 1:
            ctx.emit("order.completed", {"key": order["key"]})
        token = nonce()
        await record(**where, phase="done", attempt=ctx.attempt, nonce=token)
        return StepResponse({"step": name, "nonce": token}, compensate_input={"nonce": token})

    async def compensate(undo: Any, ctx: StepContext) -> None:
        where = {"kind": "comp", "run_id": ctx.run_id, "step": name}
        await record(**where, phase="start", input=undo)
        await work()
        await record(**where, phase="done")

    return create_step(name, invoke, compensate, max_retries=1, retry_interval=0.05)


_steps = [_chaos_step(index, name) for index, name in enumerate(STEPS)]


def _flow(order: Any) -> WorkflowResponse:
    previous: Any = None
    outputs = []
    for step in _steps:
        previous = step({"order": order, "previous": previous})
        outputs.append(previous)
    return WorkflowResponse(
        transform({"key": order["key"], "outputs": outputs}, _summary),
    )


def _summary(values: dict[str, Any]) -> dict[str, Any]:
    return {"key": values["key"], "nonces": [o["nonce"] for o in values["outputs"]]}


chaos_saga = create_workflow(WORKFLOW, _flow)
