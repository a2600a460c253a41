"""``runtime jobs list`` and ``runtime schedules``: what fires when, and what the store recorded.

``jobs list`` shows the jobs of ``jobs/``; ``schedules`` shows every schedule the
service runs: each job, and each ``schedules=[...]`` a workflow declares (named
``<workflow>:<schedule>``), by the names the store keeps them under.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from runtime.cli.common import (
    EXIT_USAGE,
    Context,
    echo_json,
    fail,
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
from runtime.errors import DatabaseNotFoundError, DefinitionError
from runtime.models import ScheduleRecord
from runtime.registry import Registry
from runtime.scheduling.entries import schedules_for
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
        listed.append(
            {
                "name": job.name,
                "workflow": f"job-{job.name}",
                "schedule": cron.expression,
                "timezone": tz_name,
                "next": _upcoming(cron, now, fire_times),
                "number_of_executions": job.config.number_of_executions,
                "overlap": job.config.overlap,
                "file": job.source,
            }
        )
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
    _with_stored(ctx, listed)
    if as_json:
        echo_json([_json(job) for job in listed])
        return
    rows = [(j["name"], j["schedule"], j["timezone"], *_fired(j), j["file"]) for j in listed]
    headers = (
        "JOB",
        "SCHEDULE",
        "TIMEZONE",
        "NEXT FIRE TIMES",
        "EXECUTIONS",
        "STORED NEXT",
        "FILE",
    )
    click.echo(table(headers, rows))


def schedules_found(
    config: ProjectConfig,
    found: Discovered,
    *,
    fire_times: int = FIRE_TIMES,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every schedule the service would run (jobs and workflows' own), as dicts.

    Built by :func:`runtime.scheduling.entries.schedules_for` from the newest version of each
    workflow, as ``Runtime`` builds them, so the names are the store's.

    Raises:
        DefinitionError: two schedules with one name.
    """
    now = now or datetime.now(UTC)
    registry = Registry()
    for workflow in found.workflows:
        registry.register(workflow)
    files = {f"job-{job.name}": job.source for job in found.jobs}
    for workflow in registry.newest():
        files[workflow.name] = found.source_of(f"workflow:{workflow.name}@{workflow.version}")
    listed = []
    entries = schedules_for(found.jobs, registry.newest(), config.timezone)
    for entry in sorted(entries, key=lambda e: e.name):
        listed.append(
            {
                "name": entry.name,
                "workflow": entry.workflow,
                "schedule": entry.cron.expression,
                "timezone": entry.cron.tz_name,
                "next": _upcoming(entry.cron, now, fire_times),
                "max_executions": entry.max_executions,
                "overlap": entry.overlap,
                "file": files.get(entry.workflow),
            }
        )
    return listed


@click.command()
@json_option
@pass_context
def schedules(ctx: Context, as_json: bool) -> None:
    """List every schedule: the jobs in jobs/ and the schedules workflows declare
    (``<workflow>:<schedule>``), with the next fire times in the schedule's timezone and
    how often each fired and when it fires next by the database (blank if it never ran
    under a service)."""
    config, found = ctx.discover()
    try:
        listed = schedules_found(config, found)
    except DefinitionError as exc:
        fail(str(exc), EXIT_USAGE)
    _with_stored(ctx, listed)
    if as_json:
        echo_json([_json(entry) for entry in listed])
        return
    rows = [(s["name"], s["workflow"], s["schedule"], s["timezone"], *_fired(s)) for s in listed]
    headers = ("SCHEDULE", "WORKFLOW", "CRON", "TIMEZONE")
    click.echo(table((*headers, "NEXT FIRE TIMES", "EXECUTIONS", "STORED NEXT"), rows))


def _fired(entry: dict[str, Any]) -> tuple[str, int | None, str | None]:
    """The next fire times, the stored executions and the stored next time, for a table.

    A schedule that used up its ``number_of_executions`` shows ``done (N of N)``
    instead of fire times: it never fires again.
    """
    stored = entry["stored_next_fire_at"]
    if entry["exhausted"]:
        upcoming = f"done ({entry['executions']} of {_limit(entry)})"
    else:
        upcoming = ", ".join(local(m) for m in entry["next"])
    return upcoming, entry["executions"], local(stored) if stored else None


def _limit(entry: dict[str, Any]) -> int | None:
    """The schedule's ``number_of_executions`` as the code declares it (jobs or schedules)."""
    limit: int | None = entry.get("number_of_executions", entry.get("max_executions"))
    return limit


def _upcoming(cron: CronSchedule, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``now``, in the schedule's timezone."""
    upcoming: list[datetime] = []
    moment = now
    for _ in range(count):
        moment = cron.next_after(moment)
        upcoming.append(moment.astimezone(cron.tz))
    return upcoming


def _with_stored(ctx: Context, listed: list[dict[str, Any]]) -> None:
    """Add what the store recorded for each schedule: ``executions``, ``stored_next_fire_at``."""

    async def list_schedules(store: Store) -> list[ScheduleRecord]:
        return await store.list_schedules()

    async def read() -> list[ScheduleRecord]:
        # The schedules come from the code; only what the store recorded needs a database.
        try:
            return await with_store(ctx, list_schedules)
        except DatabaseNotFoundError as exc:
            click.echo(f"warning: {exc}; the stored columns are blank", err=True)
            return []

    stored = run_async(read) if listed else []
    by_name = {s.name: s for s in stored}
    for entry in listed:
        record = by_name.get(entry["name"])
        tz = entry["next"][0].tzinfo if entry["next"] else UTC
        entry["executions"] = record.executions if record else None
        entry["stored_next_fire_at"] = (
            record.next_fire_at.astimezone(tz) if record and record.next_fire_at else None
        )
        # Used up (by the stored count, against the limit the code declares now: a
        # raised limit lets it run again once a service starts): no upcoming times.
        limit = _limit(entry)
        entry["exhausted"] = bool(record and limit is not None and record.executions >= limit)
        if entry["exhausted"]:
            entry["next"] = []


def _json(job: dict[str, Any]) -> dict[str, Any]:
    stored = job["stored_next_fire_at"]
    return {
        **job,
        "next": [m.isoformat() for m in job["next"]],
        "stored_next_fire_at": stored.isoformat() if stored else None,
    }
