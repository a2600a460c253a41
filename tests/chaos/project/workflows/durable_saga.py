"""The same kind of saga, Sonamu style (``@workflow``, ``ctx.step`` with ``compensate=``).

Six steps; ``fail_at`` (2, 3 or 4, or ``None``) makes that step raise on both of its
attempts, so the run rolls back through 3-5 compensations: the failing step's own
(called with ``None``: the step returned nothing), then the completed steps' in reverse
order. ``nap_at`` parks the run in a short durable sleep before that step.
"""

from __future__ import annotations

import functools
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


async def _fail(run_id: str, name: str) -> dict[str, Any]:
    await record(kind="step", run_id=run_id, step=name, phase="start")
    await work()
    await record(kind="step", run_id=run_id, step=name, phase="fail")
    raise ChaosFailure(f"{name} fails on every attempt")


async def _undo(run_id: str, name: str, result: dict[str, Any] | None) -> None:
    where = {"kind": "comp", "run_id": run_id, "step": name}
    await record(**where, phase="start", input=result and {"nonce": result["nonce"]})
    await work()
    await record(**where, phase="done")


@workflow(name=WORKFLOW)
async def chaos_durable(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    data: dict[str, Any] = ctx.input
    nonces = []
    for index, name in enumerate(STEPS):
        if data.get("nap_at") == index:
            await ctx.sleep("nap", NAP_SECONDS)
        options = {
            "compensate": functools.partial(_undo, ctx.run_id, name),
            "max_retries": 1,
            "retry_interval": 0.05,
        }
        fn = _fail if data.get("fail_at") == index else _act
        result = await ctx.step(name, fn, ctx.run_id, name, **options)
        nonces.append(result["nonce"])
    return {"key": data["key"], "nonces": nonces}
