"""A data pipeline in three stages (collect, transform, save), each one a step.

Each stage's result is checkpointed before the next stage starts. So when a
stage fails, nothing before it has to run again:

1. ``collect_data`` calls the external API (slow, rate-limited, maybe billed);
2. ``transform`` tidies the records: plain synchronous code is a fine step;
3. ``save`` writes them to the database.

Say the transform has a bug. The run fails at ``transform`` (no step sets
``max_retries``, so it is not retried on its own) and shows the error::

    run = await rt.workflows.get_run(run_id)     # status failed, error at "transform"

Fix the code (or the data it chokes on), deploy, and retry the run::

    await rt.workflows.retry(run_id)

The retry starts from the first step without a completed checkpoint: the
collected data is read back from the run's record and the external API is not
called again; ``transform`` and ``save`` run.
"""

from __future__ import annotations

from typing import Any

from runtime import WorkflowContext, workflow


@workflow(name="process_user_data")
async def process_user_data(ctx: WorkflowContext[Any]) -> dict[str, int]:
    """Collect the raw records, transform them, save them."""
    data = ctx.container.resolve("user_data")
    # Stage 1: collect.
    raw = await ctx.step("collect_data", data.fetch_raw_data)
    # Stage 2: transform (synchronous code works as a step too).
    transformed = await ctx.step("transform", data.transform_data, raw)
    # Stage 3: save.
    await ctx.step("save", data.save_to_database, transformed)
    ctx.logger.info("processing_completed", count=len(transformed))
    return {"processed": len(transformed)}
