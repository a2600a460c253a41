"""Backups: one workflow, two schedules, each passing its own input.

A workflow may declare several schedules. Each one fires on its own cron
expression and passes its own input, so the same code does different jobs:

- ``hourly_backup`` (``0 * * * *``) starts a run with ``{"type": "incremental"}``;
- ``daily_full_backup`` (``0 2 * * *``) starts one with ``{"type": "full"}``.

Schedule names must be unique within a workflow (two with one name are
refused when the workflow is defined); in the store they are
``backup_data:hourly_backup`` and ``backup_data:daily_full_backup``. At 2 AM
both fire, and two runs start, one of each type.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from runtime import Schedule, WorkflowContext, workflow


class BackupInput(BaseModel):
    """What kind of backup to take."""

    type: Literal["incremental", "full"]


@workflow(
    name="backup_data",
    input=BackupInput,
    schedules=[
        Schedule(name="hourly_backup", cron="0 * * * *", input={"type": "incremental"}),
        Schedule(name="daily_full_backup", cron="0 2 * * *", input={"type": "full"}),
    ],
)
async def backup_data(ctx: WorkflowContext[BackupInput]) -> dict[str, Any]:
    """Take a full or an incremental backup, as the schedule that fired asks."""
    ctx.logger.info("backup_started", type=ctx.input.type)
    backups = ctx.container.resolve("backups")
    if ctx.input.type == "full":
        backup = await ctx.step("full_backup", backups.full_backup)
    else:
        backup = await ctx.step("incremental_backup", backups.incremental_backup)
    return {"backup_id": backup["id"], "type": ctx.input.type}
