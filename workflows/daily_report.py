"""The daily report: a workflow on a cron schedule, whose input is computed when it fires.

``schedules=[Schedule(...)]`` makes the runtime start a run of the workflow at
every firing of the cron expression; ``runtime start`` (or any ``Runtime``
that knows the workflow) runs the scheduler. The schedule is called
``daily_report:daily_at_9am`` in the store and in ``runtime schedules``.

A schedule's ``input`` is either a value, the same for every firing (see
``backup_data``), or, as here, a function: it is called at each firing and
what it returns is the run's input. So each morning's run reports on that
morning's date, not on the date the process started::

    Schedule(name="daily_at_9am", cron="0 9 * * *", input=lambda: {"date": today()})

Times follow the project's ``timezone`` (``runtime.toml``; UTC by default), and
each firing happens exactly once, however many processes run the scheduler.

The workflow itself has two steps, so that if sending the e-mail fails and
the run is retried, the report is not generated again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from runtime import Schedule, WorkflowContext, workflow


def today() -> str:
    """Today's date, ``YYYY-MM-DD`` (UTC), at the moment it is called."""
    return datetime.now(UTC).date().isoformat()


class ReportInput(BaseModel):
    """Which day to report on."""

    date: str


@workflow(
    name="daily_report",
    input=ReportInput,
    schedules=[
        Schedule(
            name="daily_at_9am",
            cron="0 9 * * *",  # every day at 9 AM
            # Called at each firing: `today` is looked up then, not at import.
            input=lambda: {"date": today()},
        )
    ],
)
async def daily_report(ctx: WorkflowContext[ReportInput]) -> dict[str, bool]:
    """Generate the day's report, then mail it to the admins."""
    ctx.logger.info("generating_daily_report", date=ctx.input.date)
    reports, email = ctx.container.resolve("reports"), ctx.container.resolve("email")
    report = await ctx.step("generate_report", reports.generate_report, ctx.input.date)
    await ctx.step("send_report", email.send_daily_report, report)
    return {"success": True}
