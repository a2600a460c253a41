"""The same kind of saga, Sonamu style (``@workflow``, ``ctx.step`` with ``compensate=``).

Six steps; ``fail_at`` (3, 4 or 5, or ``None``) makes that step raise on both of its
attempts, so the run rolls back the 3-5 completed steps in reverse order (the failing
step has no compensation). ``nap_at`` parks the run in a short durable sleep before
that step.
"""

from __future__ import annotations

from typing import Any

from workflows._chaoslog import ChaosFailure, nonce, record, work

from runtime import WorkflowContext, workflow

WORKFLOW = "chaos_durable"
STEPS = ("open", "debit", "credit", "notify", "settle", "close")
NAP_SECONDS = 0.2


async def _act(run_id: str, name: str) -> dict[str, Any]:
    where = {"kind": "step", "run_id": run_id, "step": name}
    await record(**where, phase="start")
    await work()
    token = nonce()
    await record(**where, phase="done", nonce=token)
    return {"run_id": run_id, "step": name, "nonce": token}


async def _fail(run_id: str, name: str) -> None:
    await record(kind="step", run_id=run_id, step=name, phase="start")
    await work()
    await record(kind="step", run_id=run_id, step=name, phase="fail")
    raise ChaosFailure(f"{name} fails on every attempt")


async def _undo(result: dict[str, Any]) -> None:
    where = {"kind": "comp", "run_id": result["run_id"], "step": result["step"]}
    await record(**where, phase="start", input={"nonce": result["nonce"]})
    await work()
    await record(**where, phase="done")


@workflow(name=WORKFLOW)
async def chaos_durable(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    data: dict[str, Any] = ctx.input
    nonces = []
    for index, name in enumerate(STEPS):
        if data.get("nap_at") == index:
            await ctx.sleep("nap", NAP_SECONDS)
        if data.get("fail_at") == index:
            await ctx.step(name, _fail, ctx.run_id, name, max_retries=1, retry_interval=0.05)
        result = await ctx.step(
            name, _act, ctx.run_id, name, compensate=_undo, max_retries=1, retry_interval=0.05
        )
        nonces.append(result["nonce"])
    return {"key": data["key"], "nonces": nonces}
