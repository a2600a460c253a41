"""``runtime check`` and ``runtime workflows|subscribers list``: what the project defines."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import click
import structlog

from runtime.cli.common import (
    EXIT_FAILED,
    Context,
    echo_json,
    json_option,
    pass_context,
    table,
)
from runtime.cli.jobs import jobs, jobs_found
from runtime.config import (
    ProjectConfig,
    check_exposure,
    parse_http_address,
    redact,
    unknown_variables,
)
from runtime.container import Container
from runtime.discovery import Discovered, load_setup
from runtime.errors import ConfigError, DatabaseNotFoundError, RuntimeBaseError
from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.definitions import WorkflowDefinition
from runtime.sdk.durable import version_key

__all__ = ["check", "jobs", "subscribers", "workflows"]


def _schedules(workflow: WorkflowDefinition, config: ProjectConfig) -> list[dict[str, str]]:
    return [
        {"name": s.name, "cron": s.cron, "timezone": s.timezone or config.timezone}
        for s in workflow.schedules
    ]


def _workflows_found(config: ProjectConfig, found: Discovered) -> list[dict[str, Any]]:
    return [
        {
            "name": w.name,
            "version": w.version,
            "style": w.kind,
            "steps": len(w.graph.steps) if isinstance(w, CompositionWorkflow) else None,
            "schedules": _schedules(w, config),
            "file": found.source_of(f"workflow:{w.name}@{w.version}"),
        }
        for w in sorted(found.workflows, key=lambda w: (w.name, version_key(w.version)))
    ]


def _subscribers_found(found: Discovered) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "events": list(s.config.patterns),
            "max_attempts": s.config.max_attempts,
            "timeout": s.config.timeout,
            "file": s.source,
        }
        for s in sorted(found.subscribers, key=lambda s: s.id)
    ]


def _startup_problems(config: ProjectConfig, found: Discovered) -> list[str]:
    """What ``runtime start`` would still refuse once every module imported cleanly."""
    from runtime.service import LOGGER_KEY, SERVICE_PREFIX, Runtime

    problems = []
    try:
        hook = load_setup(config)
        if hook is not None:
            # The hook runs as at start-up, on a container of its own (no store is
            # opened), so a hook that raises is found before the service starts.
            container = Container()
            service_logger = structlog.get_logger("runtime")
            for key in (LOGGER_KEY, LOGGER_KEY.removeprefix(SERVICE_PREFIX)):
                container.register(key, service_logger)
            anyio.run(hook, container)
    except RuntimeBaseError as exc:
        problems.append(str(exc))
    try:
        Runtime(
            config.database,
            workflows=found.workflows,
            subscribers=found.subscribers,
            jobs=found.jobs,
            base_dir=config.root,
            timezone=config.timezone,
            background=False,
        )
    except RuntimeBaseError as exc:
        problems.append(f"{config.source}: {exc}")
    if config.http is not None:
        try:
            check_exposure(parse_http_address(config.http), config.http_token)
        except ConfigError as exc:
            problems.append(f"{config.source}: {exc}")
    return problems


def _database_problems(ctx: Context, config: ProjectConfig) -> list[str]:
    """Whether the database can be used, looked at without creating anything."""

    async def probe() -> None:
        store = await ctx.open_store()
        await store.close()

    try:
        anyio.run(probe)
    except DatabaseNotFoundError:
        return []  # not created yet: 'runtime start' creates it
    except RuntimeBaseError as exc:
        return [f"database {redact(ctx.database_url(config))}: {exc}"]
    return []


def _cron_text(schedules: list[dict[str, str]]) -> str:
    return ", ".join(f"{s['cron']} ({s['timezone']})" for s in schedules)


@click.command()
@json_option
@pass_context
def check(ctx: Context, as_json: bool) -> None:
    """Load the project without starting it: list what was found and every problem.

    Problems go to stderr, one line each naming the file; any problem exits 1.
    Warnings (a ``RUNTIME_<X>`` variable that names no setting) go to stderr too
    but do not change the exit code.
    """
    config, found = ctx.discover(strict=False)
    problems = [" ".join(p.split()) for p in found.problems]
    if not problems:
        problems = [" ".join(p.split()) for p in _startup_problems(config, found)]
    problems += _database_problems(ctx, config)
    report: dict[str, Any] = {
        "config": config.source,
        "database": redact(ctx.database_url(config)),
        "timezone": config.timezone,
        "workflows": _workflows_found(config, found),
        "subscribers": _subscribers_found(found),
        "jobs": [
            {k: v for k, v in job.items() if k != "next"}
            for job in jobs_found(config, found, fire_times=0)
        ],
        "problems": problems,
        "warnings": list(unknown_variables().values()),
    }
    if as_json:
        echo_json(report)
    else:
        click.echo(f"config: {config.source}")
        click.echo(f"database: {report['database']}")
        click.echo(f"timezone: {config.timezone}")
        click.echo(f"workflows: {len(report['workflows'])}")
        for w in report["workflows"]:
            cron = f"  schedules: {_cron_text(w['schedules'])}" if w["schedules"] else ""
            click.echo(f"  {w['name']}  ({w['file']}){cron}")
        click.echo(f"subscribers: {len(report['subscribers'])}")
        for s in report["subscribers"]:
            click.echo(f"  {s['id']}  events: {', '.join(s['events'])}  ({s['file']})")
        click.echo(f"jobs: {len(report['jobs'])}")
        for j in report["jobs"]:
            click.echo(f"  {j['name']}  {j['schedule']} ({j['timezone']})  ({j['file']})")
        click.echo(f"problems: {len(problems)}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        sys.exit(EXIT_FAILED)


@click.group()
def workflows() -> None:
    """The workflows of the project."""


@workflows.command("list")
@json_option
@pass_context
def workflows_list(ctx: Context, as_json: bool) -> None:
    """List the workflows found in workflows/, with their schedules."""
    config, found = ctx.discover()
    listed = _workflows_found(config, found)
    if as_json:
        echo_json(listed)
        return
    rows = [
        (w["name"], w["version"], w["steps"], _cron_text(w["schedules"]), w["file"]) for w in listed
    ]
    click.echo(table(("NAME", "VERSION", "STEPS", "SCHEDULES", "FILE"), rows))


@click.group()
def subscribers() -> None:
    """The subscribers of the project."""


@subscribers.command("list")
@json_option
@pass_context
def subscribers_list(ctx: Context, as_json: bool) -> None:
    """List the subscribers found in subscribers/: the events each receives."""
    _, found = ctx.discover()
    listed = _subscribers_found(found)
    if as_json:
        echo_json(listed)
        return
    rows = [
        (s["id"], ", ".join(s["events"]), s["max_attempts"], f"{s['timeout']:g} s", s["file"])
        for s in listed
    ]
    click.echo(table(("SUBSCRIBER", "EVENTS", "MAX ATTEMPTS", "TIMEOUT", "FILE"), rows))
