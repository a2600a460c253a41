"""``runtime runs show``: what a run is doing now, and errors as people read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from runtime import Runtime, WorkflowContext, create_step, create_workflow, workflow
from runtime.cli.common import when
from runtime.cli.runs import current_step
from runtime.models import RunRecord, RunStatus, StepRecord, StepStatus
from runtime.retry import PARK_AFTER
from tests.cli.conftest import cli, cli_json
from tests.helpers.waiting import wait_status


def show(project: Path, run_id: str) -> list[str]:
    done = cli(project, "runs", "show", run_id)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def row(lines: list[str], step: str) -> list[str]:
    """The cells of a step's row in the table (split on runs of two spaces)."""
    (found,) = [line for line in lines if line.split()[1:2] == [step]]
    return [cell.strip() for cell in found.split("  ") if cell.strip()]


async def _sleeping_run(project: Path) -> str:
    @workflow(name="report")
    async def report(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("generate", lambda: "r1")
        await ctx.sleep("cool_down", 3600)

    async with Runtime("sqlite:///app.db", base_dir=project, workflows=[report]) as rt:
        handle = await rt.workflows.run("report")
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        return handle.run_id


def test_a_sleeping_step_says_sleeping_and_when_it_wakes(project: Path) -> None:
    run_id = anyio.run(_sleeping_run, project)
    shown = cli_json(project, "runs", "show", run_id)
    wakes = datetime.fromisoformat(shown["steps"][1]["output"]["wake_at"])
    assert shown["status"] == "sleeping"
    current = shown["current_step"]
    assert (current["seq"], current["name"], current["state"]) == (2, "cool_down", "sleeping")
    assert datetime.fromisoformat(current["wakes_at"]) == wakes
    assert current["wakes_at"] == shown["wake_at"]
    assert shown["steps"][1]["status"] == "running"  # stored status; current_step interprets it

    lines = show(project, run_id)
    wake_text = when(wakes)
    assert f"now       step #2 cool_down sleeping until {wake_text}" in lines
    assert row(lines, "cool_down")[2:3] == ["sleeping"]
    assert row(lines, "cool_down")[-1] == f"wakes {wake_text}"
    assert row(lines, "generate")[2] == "completed"


async def _retrying_run(project: Path) -> str:
    @create_step("flaky", max_retries=1, retry_interval=PARK_AFTER * 10)
    async def flaky() -> None:
        raise ConnectionError("upstream reset")

    wf = create_workflow("flaky-flow", lambda: flaky())
    async with Runtime("sqlite:///app.db", base_dir=project, workflows=[wf]) as rt:
        handle = await rt.workflows.run(wf)
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        return handle.run_id


def test_a_step_waiting_to_retry_says_when_and_why(project: Path) -> None:
    run_id = anyio.run(_retrying_run, project)
    shown = cli_json(project, "runs", "show", run_id)
    current = shown["current_step"]
    assert (current["seq"], current["name"], current["state"]) == (1, "flaky", "retrying")
    assert current["attempts"] == 1
    assert current["wakes_at"] == shown["available_at"]
    lines = show(project, run_id)
    (now,) = [line for line in lines if line.startswith("now ")]
    assert now.startswith("now       step #1 flaky waiting to retry (attempt 2 at ")
    cells = row(lines, "flaky")
    assert cells[2] == "retrying"
    assert cells[-1].startswith("wakes ")
    assert cells[-1].endswith("; last attempt: ConnectionError: upstream reset")


async def _show_while_a_step_runs(project: Path) -> tuple[str, dict[str, Any], list[str]]:
    started, release = anyio.Event(), anyio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "done"

    @workflow(name="import_catalog")
    async def import_catalog(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("fetch", lambda: [1, 2])
        await ctx.step("load", slow)

    async with Runtime("sqlite:///app.db", base_dir=project, workflows=[import_catalog]) as rt:
        handle = await rt.workflows.run("import_catalog")
        with anyio.fail_after(10):
            await started.wait()
        shown = await anyio.to_thread.run_sync(cli_json, project, "runs", "show", handle.run_id)
        lines = await anyio.to_thread.run_sync(show, project, handle.run_id)
        release.set()
        await handle.result(timeout=10)
    return handle.run_id, shown, lines


def test_the_step_running_now_is_shown(project: Path) -> None:
    run_id, shown, lines = anyio.run(_show_while_a_step_runs, project)
    assert shown["status"] == "running"
    fetched = shown["steps"][0]["ended_at"]
    expected = {"seq": 2, "name": None, "state": "running", "attempts": 0, "since": fetched}
    assert shown["current_step"] == {**expected, "wakes_at": None}
    assert any(line.startswith("now       step #2 running since ") for line in lines)
    # Once it ended, nothing is in flight.
    assert cli_json(project, "runs", "show", run_id)["current_step"] is None
    assert not any(line.startswith("now ") for line in show(project, run_id))


async def _canceled_run(project: Path) -> str:
    @workflow(name="idle")
    async def idle(ctx: WorkflowContext[Any]) -> None:
        await ctx.sleep("wait", 3600)

    async with Runtime("sqlite:///app.db", base_dir=project, workflows=[idle]) as rt:
        handle = await rt.workflows.run("idle", delay=3600)
        await rt.workflows.cancel(handle.run_id)
        return handle.run_id


def test_an_error_no_step_raised_has_no_none_prefix(project: Path) -> None:
    run_id = anyio.run(_canceled_run, project)
    lines = show(project, run_id)
    assert "error     Canceled: canceled by an operator" in lines
    assert not any("None" in line for line in lines)


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WAKE = NOW + timedelta(hours=1)


def _record(status: RunStatus, *steps: tuple[str, StepStatus, Any]) -> RunRecord:
    records = [
        StepRecord(run_id="run_1", seq=seq, name=name, status=step_status, attempts=1, output=out)
        for seq, (name, step_status, out) in enumerate(steps, start=1)
    ]
    return RunRecord(
        id="run_1",
        workflow="w",
        version=None,
        status=status,
        idempotency_key=None,
        available_at=WAKE,
        created_at=NOW,
        updated_at=NOW,
        steps=records,
    )


SLEEP = {"wake_at": WAKE.isoformat()}
DONE = ("a", StepStatus.COMPLETED, 1)
NAP = ("nap", StepStatus.RUNNING, SLEEP)  # a durable sleep not over yet
CALL = ("call", StepStatus.RUNNING, None)  # a step with a failed attempt recorded
UNDOING = ("a", StepStatus.COMPENSATING, 1)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (_record(RunStatus.SLEEPING, DONE, NAP), (2, "nap", "sleeping", WAKE)),
        (_record(RunStatus.PAUSED, NAP), (1, "nap", "sleeping", WAKE)),
        (_record(RunStatus.SLEEPING, CALL), (1, "call", "retrying", WAKE)),
        (_record(RunStatus.RUNNING, CALL), (1, "call", "running", None)),
        (_record(RunStatus.RUNNING, DONE), (2, None, "running", None)),
        # Rolling back a run canceled while it slept: the compensation is what runs.
        (_record(RunStatus.COMPENSATING, UNDOING, NAP), (1, "a", "compensating", None)),
        (_record(RunStatus.COMPENSATING, DONE), None),
        # Handed back (pending) or paused between attempts: nothing is in flight.
        (_record(RunStatus.PENDING, CALL), None),
        (_record(RunStatus.PAUSED, CALL), None),
        (_record(RunStatus.PENDING), None),
        (_record(RunStatus.FAILED, CALL), None),
        # Canceled while it slept: the sleep's step stays as it was, but nothing runs.
        (_record(RunStatus.CANCELED, DONE, NAP), None),
        (_record(RunStatus.COMPENSATION_FAILED, NAP), None),
    ],
)
def test_current_step_by_run_and_step_status(record: RunRecord, expected: Any) -> None:
    current = current_step(record)
    if expected is None:
        assert current is None
    else:
        assert current is not None
        assert (current["seq"], current["name"], current["state"], current["wakes_at"]) == expected
