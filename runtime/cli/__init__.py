"""The ``runtime`` command line: start the service, emit, run, read runs, events and jobs.

Read commands only open the database, so they work while ``runtime start`` runs.
Tables are for people; ``--json`` prints JSON for scripts. Exit codes:

- 0: success.
- 1: a run did not complete (failed, canceled, or still running at ``--timeout``),
  or ``check`` found problems.
- 2: bad usage or configuration: an unknown option, bad JSON, a bad ``runtime.toml``,
  a project whose modules have problems, an unknown workflow.
- 3: the run or dead delivery asked for does not exist.
- 130: ``run --here`` interrupted (Ctrl-C, SIGTERM); the run is handed back to resume.
"""

from __future__ import annotations

from pathlib import Path

import click

from runtime.cli.common import EXIT_USAGE, Context, fail
from runtime.cli.dashboard import dashboard
from runtime.cli.events import emit, events
from runtime.cli.jobs import schedules
from runtime.cli.payloads import Text
from runtime.cli.project import check, jobs, subscribers, workflows
from runtime.cli.prune import prune_command
from runtime.cli.runs import run, runs
from runtime.cli.service import bench, start
from runtime.config import parse_database_url
from runtime.errors import ConfigError
from runtime.log import configure_logging

__all__ = ["main"]


@click.group()
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The project directory (runtime.toml, workflows/, subscribers/, jobs/).",
)
@click.option(
    "--database",
    envvar="RUNTIME_DATABASE",
    type=Text(non_empty=True),
    help="Database URL (overrides config).",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    help="Log format; 'start' defaults to the project's, other commands to auto.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Lowest log level; 'start' defaults to the project's, other commands to warning.",
)
@click.version_option(package_name="runtime")
@click.pass_context
def main(
    ctx: click.Context,
    project: Path,
    database: str | None,
    log_format: str | None,
    log_level: str | None,
) -> None:
    """runtime: durable saga workflows, events and cron jobs for asyncio backends."""
    try:
        configure_logging(log_format or "auto", (log_level or "warning").lower())  # type: ignore[arg-type]
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if not project.is_dir():
        # A typo must not run on defaults, nor create a database in a new folder.
        what = "is not a folder" if project.exists() else "does not exist"
        fail(f"--project {project}: the project folder {what}", EXIT_USAGE)
    if database is not None:
        try:
            parse_database_url(database)
        except ConfigError as exc:
            fail(f"--database (or RUNTIME_DATABASE): {exc}", EXIT_USAGE)
    ctx.obj = Context(project, database, log_format=log_format, log_level=log_level)


for command in (
    start,
    check,
    emit,
    run,
    runs,
    workflows,
    subscribers,
    jobs,
    schedules,
    events,
    prune_command,
    bench,
    dashboard,
):
    main.add_command(command)
