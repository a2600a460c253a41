"""Nightly cleanup: delete log records older than a number of days, on a schedule.

``@workflow`` is given no name here: it is the function's name,
``cleanup_old_data`` (a camelCase name would be converted to snake_case, as
Sonamu does: ``cleanupOldData`` -> ``cleanup_old_data``).

The schedule ``daily_cleanup`` fires at 3 AM with ``{"days_to_keep": 90}``.

One thing differs from Sonamu's version, where the cutoff date is computed
in the workflow's body. A durable workflow's body runs again from the top
whenever the run is resumed (after a crash, a pause, a deploy), and it must
take the same path each time; reading the clock there would give a different
cutoff on each replay. So the cutoff is computed in a step of its own: its
result is stored, and a resumed run deletes up to the same cutoff. Whatever
reads the clock, a random number or the outside world belongs in a step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, PositiveInt

from runtime import Schedule, WorkflowContext, workflow


class CleanupInput(BaseModel):
    """How many days of records to keep."""

    days_to_keep: PositiveInt


def cutoff_date(days_to_keep: int) -> str:
    """The moment ``days_to_keep`` days ago (ISO 8601, UTC)."""
    return (datetime.now(UTC) - timedelta(days=days_to_keep)).isoformat()


@workflow(
    input=CleanupInput,
    schedules=[Schedule(name="daily_cleanup", cron="0 3 * * *", input={"days_to_keep": 90})],
)
async def cleanup_old_data(ctx: WorkflowContext[CleanupInput]) -> dict[str, int]:
    """Delete the log records older than ``days_to_keep`` days."""
    logs = ctx.container.resolve("logs")
    cutoff = await ctx.step("compute_cutoff", cutoff_date, ctx.input.days_to_keep)
    deleted = await ctx.step(
        "delete_old_records", logs.delete_older_than, datetime.fromisoformat(cutoff)
    )
    ctx.logger.info("cleanup_completed", deleted=deleted, cutoff=cutoff)
    return {"deleted": deleted}
