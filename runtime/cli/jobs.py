"""``runtime jobs list``: each scheduled job, its next fire times and what the store recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from runtime.cli.common import (
    Context,
    echo_json,
    json_option,
    local,
    pass_context,
    run_async,
    table,
    with_store,
)
from runtime.config import ProjectConfig
from runtime.cron import CronSchedule
from runtime.discovery import Discovered
from runtime.errors import DatabaseNotFoundError
from runtime.models import ScheduleRecord
from runtime.store.base import Store

FIRE_TIMES = 3
"""How many upcoming fire times ``jobs list`` shows."""


def jobs_found(
    config: ProjectConfig,
    found: Discovered,
    *,
    fire_times: int = FIRE_TIMES,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Each job as a dict; ``next`` holds its next ``fire_times`` firings in its timezone."""
    now = now or datetime.now(UTC)
    listed = []
    for job in sorted(found.jobs, key=lambda j: j.name):
        tz_name = job.config.timezone or config.timezone
        cron = CronSchedule(job.config.schedule, tz_name)
        upcoming: list[datetime] = []
        moment = now
        for _ in range(fire_times):
            moment = cron.next_after(moment)
            upcoming.append(moment.astimezone(cron.tz))
        listed.append({
            "name": job.name, "workflow": f"job-{job.name}", "schedule": cron.expression,
            "timezone": tz_name, "next": upcoming,
            "number_of_executions": job.config.number_of_executions,
            "overlap": job.config.overlap, "file": job.source,
        })  # fmt: skip
    return listed


@click.group()
def jobs() -> None:
    """The scheduled jobs of the project."""


@jobs.command("list")
@json_option
@pass_context
def jobs_list(ctx: Context, as_json: bool) -> None:
    """List the jobs in jobs/: schedule, the next fire times in the job's timezone, and
    how often each fired and when it fires next by the database (blank if it never ran
    under a service)."""
    config, found = ctx.discover()
    listed = jobs_found(config, found)

    async def list_schedules(store: Store) -> list[ScheduleRecord]:
        return await store.list_schedules()

    async def read() -> list[ScheduleRecord]:
        # The jobs come from the code; only what the store recorded needs a database.
        try:
            return await with_store(ctx, list_schedules)
        except DatabaseNotFoundError as exc:
            click.echo(f"warning: {exc}; the stored columns are blank", err=True)
            return []

    stored = run_async(read) if listed else []
    by_name = {s.name: s for s in stored}  # a job's schedule is named after the job
    for job in listed:
        record = by_name.get(job["name"])
        tz = job["next"][0].tzinfo if job["next"] else UTC
        job["executions"] = record.executions if record else None
        job["stored_next_fire_at"] = (
            record.next_fire_at.astimezone(tz) if record and record.next_fire_at else None
        )
    if as_json:
        echo_json([_json(job) for job in listed])
        return
    rows = [
        (j["name"], j["schedule"], j["timezone"], ", ".join(local(m) for m in j["next"]),
         j["executions"], local(j["stored_next_fire_at"]) if j["stored_next_fire_at"] else None,
         j["file"])
        for j in listed
    ]  # fmt: skip
    headers = ("JOB", "SCHEDULE", "TIMEZONE", "NEXT FIRE TIMES", "EXECUTIONS", "STORED NEXT",
               "FILE")  # fmt: skip
    click.echo(table(headers, rows))


def _json(job: dict[str, Any]) -> dict[str, Any]:
    stored = job["stored_next_fire_at"]
    return {
        **job,
        "next": [m.isoformat() for m in job["next"]],
        "stored_next_fire_at": stored.isoformat() if stored else None,
    }
