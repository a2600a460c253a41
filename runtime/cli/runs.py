"""``runtime run`` (start a run) and ``runtime runs list|show|pause|resume|cancel|retry``."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import textwrap
from typing import Any

import anyio
import click
from pydantic_core import to_jsonable_python

from runtime.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Context,
    echo_json,
    fail,
    json_option,
    pass_context,
    run_async,
    table,
    when,
    with_store,
)
from runtime.cli.payloads import Seconds, Text, payloads
from runtime.discovery import Discovered
from runtime.errors import (
    DefinitionError,
    InputValidationError,
    InvalidTransitionError,
    RunNotFoundError,
    UnknownWorkflowError,
)
from runtime.ids import new_id
from runtime.models import RunAction, RunRecord, RunStatus, StepError
from runtime.registry import Registry
from runtime.runs import current_step, run_filter
from runtime.scheduling.entries import job_workflow
from runtime.sdk.definitions import stored_input
from runtime.sdk.running import WorkflowResult
from runtime.store.base import Store
from runtime.store.records import RunPage


@click.command()
@click.argument("workflow")
@click.option(
    "--input",
    "input_json",
    default="null",
    help="The input, as JSON; @FILE reads it from a file, - from standard input.",
)
@click.option(
    "--idempotency-key",
    "--transaction-id",
    "key",
    type=Text(non_empty=True),
    help="Starting again with this key returns the run it started (no new run).",
)
@click.option("--wait", is_flag=True, help="Wait for the run to end and print its result.")
@click.option(
    "--timeout",
    type=Seconds(positive=True),
    help="With --wait: give up after this many seconds (exit 1; the run goes on).",
)
@click.option("--here", is_flag=True, help="Execute the run in this process, not the service.")
@click.option(
    "--version",
    type=Text(non_empty=True),
    help="The version of WORKFLOW to run (default: the newest).",
)
@json_option
@pass_context
def run(
    ctx: Context,
    workflow: str,
    input_json: str,
    key: str | None,
    wait: bool,
    timeout: float | None,
    here: bool,
    version: str | None,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW and print its id; the service's worker executes it.

    With --wait (or --here, which executes it in this process) print its result
    instead, and exit 1 unless it completes. The input of a durable workflow is
    validated first: bad input exits 2 and creates no run.
    """
    payload = payloads(input=input_json)["input"]
    if here and timeout is not None:
        fail("--timeout goes with --wait, not --here", EXIT_USAGE)
    if here:
        # A key of its own when none is given, so an interrupted run can be finished
        # here too (run --here with that key), not only by a service.
        here_key = key or new_id("here")
        outcome = run_async(lambda: _run_here(ctx, workflow, version, payload, here_key))
        if isinstance(outcome, _Interrupted):
            if not outcome.runs:
                click.echo("interrupted: before the run was stored; nothing to resume", err=True)
            for record in outcome.runs:
                click.echo(
                    f"interrupted: run {record.id} ({record.workflow}) stopped before its end; "
                    f"it is {record.status.value}: a running service resumes it, or run "
                    f"'runtime run {record.workflow} --here --idempotency-key "
                    f"{record.idempotency_key}' to finish it here",
                    err=True,
                )
            sys.exit(EXIT_INTERRUPTED)
        _print_result(*outcome, as_json)
        return
    config, found = ctx.discover()
    payload = _checked_input(found, workflow, version, payload)
    database = ctx.database_url(config)

    async def go() -> tuple[RunRecord, bool]:
        from runtime.client import Client

        async with Client(database, base_dir=config.root) as client:
            handle = await client.run(workflow, payload, version=version, idempotency_key=key)
            if wait or timeout is not None:
                try:
                    return await client.wait(handle.run_id, timeout), False
                except TimeoutError:
                    return await client.get_run(handle.run_id, steps=False), True
            return await client.get_run(handle.run_id, steps=False), False

    record, timed_out = run_async(go)
    if not (wait or timeout is not None):
        if as_json:
            echo_json({"run_id": record.id, "status": record.status.value})
        else:
            click.echo(record.id)
        return
    if timed_out:
        click.echo(
            f"error: run {record.id} is still {record.status.value} after {timeout} s", err=True
        )
    errors = [record.error] if record.error else []
    _print_result(record.id, record.status, record.output, errors, as_json)


def _checked_input(found: Discovered, workflow: str, version: str | None, payload: Any) -> Any:
    """The input to store for a run the service will execute, checked as the service would.

    The workflow must be one the project defines (exit 2 otherwise); a durable
    workflow's input is validated against its schema, so bad input creates no run.
    """
    registry = Registry()
    for definition in (*found.workflows, *(job_workflow(j) for j in found.jobs)):
        registry.register(definition)
    try:
        return stored_input(registry.resolve(workflow, version), payload)
    except (InputValidationError, UnknownWorkflowError) as exc:
        fail(str(exc), EXIT_USAGE)


@dataclasses.dataclass(frozen=True, slots=True)
class _Interrupted:
    """``run --here`` was stopped by SIGINT (Ctrl-C) or SIGTERM: the runs it handed back."""

    runs: list[RunRecord]


async def _run_here(
    ctx: Context, workflow: str, version: str | None, payload: Any, key: str | None
) -> tuple[str, RunStatus, Any, list[StepError]] | _Interrupted:
    """Drive one run in this process; on SIGINT/SIGTERM stop it and hand it back.

    The run's caller is cancelled, so the engine hands the run back (``pending``,
    no owner) for a service, or a ``run --here`` with the same idempotency key, to
    resume from its last checkpoint.
    """
    from runtime.service import Runtime

    options: dict[str, Any] = {"background": False}
    if ctx.database:
        options["database"] = ctx.database
    result: WorkflowResult | None = None
    interrupted: list[str] = []
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Runtime.from_project(ctx.project, **options) as rt:
            # The newest version unless one is asked for, as the worker picks it.
            definition = rt.registry.resolve(workflow, version)
            async with anyio.create_task_group() as tg:

                async def drive() -> None:
                    nonlocal result
                    result = await definition(rt.container).run(
                        input=payload, transaction_id=key, throw_on_error=False
                    )
                    tg.cancel_scope.cancel()

                tg.start_soon(drive)
                async for _ in signals:
                    interrupted = rt.active_runs
                    tg.cancel_scope.cancel()
                    break
            if result is None:
                return _Interrupted([await rt.store.get_run(r, steps=False) for r in interrupted])
    return result.run_id, result.status, result.result, list(result.errors)


def _print_result(
    run_id: str, status: RunStatus, output: Any, errors: list[StepError], as_json: bool
) -> None:
    if as_json:
        echo_json(
            {
                "run_id": run_id,
                "status": status.value,
                "result": output,
                "errors": [e.model_dump(exclude={"traceback"}) for e in errors],
            }
        )
    else:
        click.echo(f"run {run_id}: {status.value}")
        if status is RunStatus.COMPLETED:
            click.echo(json.dumps(output, indent=2, default=str))
        for error in errors:
            click.echo(f"  {error_text(error)}")
    if status is not RunStatus.COMPLETED:
        sys.exit(EXIT_FAILED)


@click.group()
def runs() -> None:
    """Read runs (works while the service is running)."""


@runs.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs with this status (repeatable).",
)
@click.option("--workflow", type=Text(), help="Only runs of this workflow.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", type=Text(), help="next_cursor from a previous page.")
@json_option
@pass_context
def runs_list(
    ctx: Context,
    statuses: tuple[str, ...],
    workflow: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    try:
        wanted = run_filter(statuses, workflow, limit, cursor)
    except DefinitionError as exc:
        fail(str(exc), EXIT_USAGE)

    async def read(store: Store) -> RunPage:
        return await store.list_runs(status=wanted, workflow=workflow, limit=limit, cursor=cursor)

    page = run_async(lambda: with_store(ctx, read))
    if as_json:
        echo_json(
            {
                "runs": [r.model_dump(mode="json", exclude={"steps"}) for r in page.runs],
                "next_cursor": page.next_cursor,
            }
        )
        return
    rows = [
        (
            r.id,
            r.workflow,
            r.status.value,
            when(r.created_at),
            when(r.ended_at),
            r.error.message if r.error else "",
        )
        for r in page.runs
    ]
    click.echo(table(("RUN", "WORKFLOW", "STATUS", "CREATED", "ENDED", "ERROR"), rows))
    if page.next_cursor:
        click.echo(f"more: --cursor '{page.next_cursor}'")


@runs.command("show")
@click.argument("run_id", type=Text())
@json_option
@pass_context
def runs_show(ctx: Context, run_id: str, as_json: bool) -> None:
    """Show a run with its steps: status, attempts, timings, errors (exit 3 if unknown).

    ``now`` (``current_step`` in JSON) is the step in flight: running, sleeping until
    its wake-up time, waiting for its next attempt, or being compensated.
    """

    async def read(store: Store) -> RunRecord:
        return await store.get_run(run_id)

    record = run_async(lambda: with_store(ctx, read))
    current = current_step(record)
    if as_json:
        shown = json.loads(record.model_dump_json())
        shown["current_step"] = to_jsonable_python(current)  # times as the record's are
        echo_json(shown)
        return
    click.echo(f"run       {record.id}")
    click.echo(f"workflow  {record.workflow}" + (f" {record.version}" if record.version else ""))
    click.echo(f"status    {record.status.value}")
    click.echo(f"created   {when(record.created_at)}")
    if current is not None:
        click.echo(f"now       {_doing(current)}")
    if record.ended_at:
        click.echo(f"ended     {when(record.ended_at)}")
    if record.error:
        click.echo("error     " + error_text(record.error).replace("\n", "\n          "))
    if record.status is RunStatus.COMPLETED:
        click.echo(f"output    {json.dumps(record.output, default=str)}")
    rows = []
    for step in record.steps:
        status, detail = step.status.value, ""
        if current is not None and current["seq"] == step.seq:
            status = current["state"]
            if current["wakes_at"] is not None:
                detail = f"wakes {when(current['wakes_at'])}"
        took = ""
        if step.started_at and step.ended_at:
            took = f"{(step.ended_at - step.started_at).total_seconds() * 1000:.1f} ms"
        if step.error:
            failed = f"{step.error.type}: {step.error.message}"
            detail = f"{detail}; last attempt: {failed}" if detail else failed
        rows.append(
            (step.seq, step.name, status, step.attempts, when(step.started_at), took, detail)
        )
    click.echo("")
    click.echo(table(("#", "STEP", "STATUS", "ATTEMPTS", "STARTED", "TOOK", "DETAIL"), rows))
    for step in record.steps:
        # The table shows the first line of an error; the whole text follows it,
        # unless it is the run's error, shown whole above.
        shown = record.error is not None and (record.error.step, record.error.message) == (
            step.name,
            step.error.message if step.error else None,
        )
        if step.error and "\n" in step.error.message.strip() and not shown:
            click.echo(f"\nstep {step.seq} {step.name}: {step.error.type}:")
            click.echo(textwrap.indent(step.error.message.strip(), "  "))


def error_text(error: StepError) -> str:
    """``step: Type: message``, or ``Type: message`` for an error that no step raised."""
    where = f"{error.step}: " if error.step else ""
    return f"{where}{error.type}: {error.message}"


def _doing(current: dict[str, Any]) -> str:
    """The ``now`` line of ``runs show``."""
    step = f"step #{current['seq']}" + (f" {current['name']}" if current["name"] else "")
    if current["state"] == "sleeping":
        return f"{step} sleeping until {when(current['wakes_at'])}"
    if current["state"] == "retrying":
        attempt = current["attempts"] + 1
        return f"{step} waiting to retry (attempt {attempt} at {when(current['wakes_at'])})"
    since = f" since {when(current['since'])}" if current["since"] else ""
    if current["name"] is None:
        return f"{step} running{since} (named in its checkpoint, written when it ends)"
    return f"{step} {current['state']}{since}"


def _control_command(action: RunAction, summary: str) -> click.Command:
    @click.command(action.value, help=summary)
    @click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...", type=Text())
    @json_option
    @pass_context
    def command(ctx: Context, run_ids: tuple[str, ...], as_json: bool) -> None:
        async def apply(store: Store) -> list[tuple[str, RunRecord | str]]:
            from runtime.clock import SystemClock

            outcomes: list[tuple[str, RunRecord | str]] = []
            for run_id in run_ids:
                try:
                    outcomes.append(
                        (run_id, await store.control_run(run_id, action, SystemClock().now()))
                    )
                except (InvalidTransitionError, RunNotFoundError) as exc:
                    outcomes.append((run_id, f"{type(exc).__name__}: {exc}"))
            return outcomes

        outcomes = run_async(lambda: with_store(ctx, apply))
        refused = [(run_id, why) for run_id, why in outcomes if isinstance(why, str)]
        if as_json:
            echo_json(
                [
                    {"run_id": run_id, "status": r.status.value, "control": r.control}
                    if isinstance(r, RunRecord)
                    else {"run_id": run_id, "error": r}
                    for run_id, r in outcomes
                ]
            )
        else:
            for run_id, record in outcomes:
                if isinstance(record, RunRecord):
                    pending = (
                        f" ({record.control} after its running step)" if record.control else ""
                    )
                    click.echo(f"{run_id}: {record.status.value}{pending}")
        for _, why in refused:
            click.echo(f"error: {why}", err=True)
        if any("RunNotFoundError" in why for _, why in refused):
            sys.exit(EXIT_NOT_FOUND)
        if refused:
            sys.exit(EXIT_FAILED)

    return command


for _action, _summary in (
    (RunAction.PAUSE, "Pause runs (pending, running or sleeping); a running step finishes first."),
    (RunAction.RESUME, "Resume paused runs (due now; a durable sleep keeps its wake-up time)."),
    (RunAction.CANCEL, "Cancel runs; their completed steps are compensated by a worker."),
    (RunAction.RETRY, "Retry failed, compensation_failed or canceled runs from where they failed."),
):
    runs.add_command(_control_command(_action, _summary))
