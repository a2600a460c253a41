"""``ctx.idempotency_key`` is per step position (``run_id:seq``), not per step name."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import RunStatus, Runtime, StepContext, WorkflowContext, create_step, workflow

pytestmark = pytest.mark.anyio


async def test_two_steps_of_one_name_get_distinct_keys(db_url: str) -> None:
    """Bug: the key was ``run_id:step_name``, so two durable steps of one name in one run
    shared it and an external API would treat the second charge as a duplicate of the
    first; now each gets ``f"{run_id}:{seq}"``."""
    keys: list[tuple[Any, str]] = []

    @create_step("charge")
    async def charge(item: Any, ctx: StepContext) -> Any:
        keys.append((item, ctx.idempotency_key))
        return item

    @workflow
    async def two_charges(ctx: WorkflowContext) -> list[Any]:
        return [await ctx.step(charge, "book"), await ctx.step(charge, "pen")]

    async with Runtime(db_url, workflows=[two_charges], background=False) as rt:
        result = await two_charges(rt.container).run(input={})
    assert result.status is RunStatus.COMPLETED
    run_id = result.run_id
    assert keys == [("book", f"{run_id}:1"), ("pen", f"{run_id}:2")]


async def test_key_is_stable_across_retries_of_one_step(db_url: str) -> None:
    """Bug guard: the per-step key must not change between attempts of one step (it is
    what makes a retried external call exactly-once); it is ``f"{run_id}:{seq}"``."""
    seen: list[tuple[int, str]] = []

    async def flaky(ctx: StepContext) -> str:
        seen.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt == 1:
            raise RuntimeError("transient")
        return "ok"

    @create_step("flaky", max_retries=2, retry_interval=0.01)
    async def flaky_step(inp: Any, ctx: StepContext) -> str:
        return await flaky(ctx)

    @workflow
    async def retried(ctx: WorkflowContext) -> list[Any]:
        first = await ctx.step("flaky", lambda: "first")
        return [first, await ctx.step(flaky_step, None)]

    async with Runtime(db_url, workflows=[retried], background=False) as rt:
        result = await retried(rt.container).run(input={})
    assert result.status is RunStatus.COMPLETED
    assert result.result == ["first", "ok"]
    key = f"{result.run_id}:2"
    assert seen == [(1, key), (2, key)]
