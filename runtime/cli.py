"""The ``runtime`` command line: run workflows, read runs, check a project, benchmark.

Exit codes: 0 success; 1 a run did not complete, or ``check`` found problems;
2 bad usage or configuration; 3 the run asked for does not exist.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click

from runtime.config import load_project_config
from runtime.discovery import discover
from runtime.errors import ConfigError, RunNotFoundError, RuntimeBaseError
from runtime.log import configure
from runtime.models import RunRecord, RunStatus
from runtime.service import Runtime, open_store
from runtime.store.base import Store

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3


class Context:
    """Options shared by every subcommand."""

    def __init__(self, project: Path, database: str | None) -> None:
        self.project = project
        self.database = database

    def database_url(self) -> str:
        return self.database or load_project_config(self.project).database

    async def open_store(self) -> Store:
        return await open_store(self.database_url(), self.project.resolve())


pass_context = click.make_pass_decorator(Context)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except RunNotFoundError as exc:
        _fail(str(exc), EXIT_NOT_FOUND)
    except (ConfigError, RuntimeBaseError) as exc:
        _fail(str(exc), EXIT_CONFIG)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
             for row in cells]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def _when(moment: Any) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@click.group()
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The project directory (runtime.toml, workflows/).",
)
@click.option("--database", envvar="RUNTIME_DATABASE", help="Database URL (overrides config).")
@click.option("--log-format", type=click.Choice(["auto", "console", "json"]), default="auto")
@click.option("--log-level", default="warning", show_default=True)
@click.pass_context
def main(
    ctx: click.Context, project: Path, database: str | None, log_format: str, log_level: str
) -> None:
    """runtime: durable saga workflows for asyncio backends."""
    try:
        configure(log_format, log_level)  # type: ignore[arg-type]
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    ctx.obj = Context(project, database)


@main.command()
@click.argument("workflow")
@click.option("--input", "input_json", default="null", help="The input, as JSON.")
@click.option("--transaction-id", help="Resume or read the run started with this id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def run(ctx: Context, workflow: str, input_json: str, transaction_id: str | None,
        as_json: bool) -> None:  # fmt: skip
    """Run WORKFLOW in this process and print its result (exit 1 unless it completes)."""
    try:
        payload = json.loads(input_json)
    except json.JSONDecodeError as exc:
        _fail(f"--input is not valid JSON: {exc}", EXIT_CONFIG)

    async def go() -> Any:
        options: dict[str, Any] = {"recovery": False}
        if ctx.database:
            options["database"] = ctx.database
        runtime = Runtime.from_project(ctx.project, **options)
        async with runtime as rt:
            definition = rt.registry.get(workflow)
            return await definition(rt.container).run(
                input=payload, transaction_id=transaction_id, throw_on_error=False
            )

    result = _run(go)
    if as_json:
        click.echo(json.dumps({
            "run_id": result.run_id, "status": result.status.value, "result": result.result,
            "errors": [e.model_dump(exclude={"traceback"}) for e in result.errors],
        }))  # fmt: skip
    else:
        click.echo(f"run {result.run_id}: {result.status.value}")
        if result.status is RunStatus.COMPLETED:
            click.echo(json.dumps(result.result, indent=2))
        for error in result.errors:
            click.echo(f"  {error.step}: {error.type}: {error.message}")
    if result.status is not RunStatus.COMPLETED:
        sys.exit(EXIT_FAILED)


@main.command()
@pass_context
def check(ctx: Context) -> None:
    """Load the project without starting it; list what was found and every problem."""
    try:
        config = load_project_config(ctx.project)
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    found = discover(config)
    click.echo(f"config: {config.source}")
    click.echo(f"database: {ctx.database or config.database}")
    click.echo(f"workflows: {len(found.workflows)}")
    for workflow in sorted(found.workflows, key=lambda w: w.name):
        source = found.source_of(f"workflow:{workflow.name}@{workflow.version}")
        click.echo(f"  {workflow.name}  ({source})")
    for problem in found.problems:
        click.echo(f"problem: {problem}", err=True)
    if found.problems:
        sys.exit(EXIT_FAILED)


@main.group()
def workflows() -> None:
    """The workflows of the project."""


@workflows.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def workflows_list(ctx: Context, as_json: bool) -> None:
    """List the workflows discovered in workflows/."""
    try:
        found = discover(load_project_config(ctx.project))
        found.raise_problems()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    rows = [
        (
            w.name,
            w.version or "",
            len(w.graph.steps),
            found.source_of(f"workflow:{w.name}@{w.version}"),
        )
        for w in sorted(found.workflows, key=lambda w: w.name)
    ]
    if as_json:
        keys = ("name", "version", "steps", "file")
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
    else:
        click.echo(_table(("NAME", "VERSION", "STEPS", "FILE"), rows))


@main.group()
def runs() -> None:
    """Read runs (works while the service is running)."""


@runs.command("list")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([s.value for s in RunStatus]))  # fmt: skip
@click.option("--workflow")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", help="next_cursor from a previous page.")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def runs_list(ctx: Context, statuses: tuple[str, ...], workflow: str | None, limit: int,
              cursor: str | None, as_json: bool) -> None:  # fmt: skip
    """List runs, newest first."""

    async def go() -> Any:
        store = await ctx.open_store()
        try:
            return await store.list_runs(
                status=[RunStatus(s) for s in statuses] or None,
                workflow=workflow, limit=limit, cursor=cursor,
            )  # fmt: skip
        finally:
            await store.close()

    page = _run(go)
    if as_json:
        click.echo(json.dumps({
            "runs": [r.model_dump(mode="json", exclude={"steps"}) for r in page.runs],
            "next_cursor": page.next_cursor,
        }))  # fmt: skip
        return
    rows = [(r.id, r.workflow, r.status.value, _when(r.created_at), _when(r.ended_at),
             r.error.message if r.error else "") for r in page.runs]  # fmt: skip
    click.echo(_table(("RUN", "WORKFLOW", "STATUS", "CREATED", "ENDED", "ERROR"), rows))
    if page.next_cursor:
        click.echo(f"more: --cursor '{page.next_cursor}'")


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def runs_show(ctx: Context, run_id: str, as_json: bool) -> None:
    """Show a run with its steps: status, attempts, timings, errors."""

    async def go() -> RunRecord:
        store = await ctx.open_store()
        try:
            return await store.get_run(run_id)
        finally:
            await store.close()

    record = _run(go)
    if as_json:
        click.echo(record.model_dump_json())
        return
    click.echo(f"run       {record.id}")
    click.echo(f"workflow  {record.workflow}" + (f" {record.version}" if record.version else ""))
    click.echo(f"status    {record.status.value}")
    click.echo(f"created   {_when(record.created_at)}")
    if record.ended_at:
        click.echo(f"ended     {_when(record.ended_at)}")
    if record.error:
        click.echo(f"error     {record.error.step}: {record.error.type}: {record.error.message}")
    if record.status is RunStatus.COMPLETED:
        click.echo(f"output    {json.dumps(record.output)}")
    rows = []
    for step in record.steps:
        took = ""
        if step.started_at and step.ended_at:
            took = f"{(step.ended_at - step.started_at).total_seconds() * 1000:.1f} ms"
        error = f"{step.error.type}: {step.error.message}" if step.error else ""
        rows.append((step.seq, step.name, step.status.value, step.attempts,
                     _when(step.started_at), took, error))  # fmt: skip
    click.echo("")
    click.echo(_table(("#", "STEP", "STATUS", "ATTEMPTS", "STARTED", "TOOK", "ERROR"), rows))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option("--runs", "repeat", default=3, show_default=True, type=click.IntRange(1, 20),
              help="Repeat the whole measurement and report medians.")  # fmt: skip
def bench(as_json: bool, repeat: int) -> None:
    """Measure step throughput, start-to-result latency and memory on a fresh SQLite file."""
    from runtime.bench import measure

    samples = [anyio.run(measure) for _ in range(repeat)]
    figures = {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}
    figures["peak_rss_mb"] = max(s["peak_rss_mb"] for s in samples)
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"runtime bench: medians of {repeat} run(s), fresh SQLite file in WAL mode")
    click.echo(_table(("FIGURE", "VALUE"), list(figures.items())))
