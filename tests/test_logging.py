"""Log context: every line written inside a step, a handler or a job carries where it came from."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from runtime import (
    RunFailed,
    RunStatus,
    Runtime,
    WorkflowContext,
    configure_logging,
    create_step,
    create_workflow,
    workflow,
)
from runtime.sdk.specs import Job, JobConfig, Subscriber, SubscriberArgs, SubscriberConfig
from tests.durable.support import wait_status


async def test_a_step_logs_with_its_run_workflow_and_step(db_url: str) -> None:
    seen: list[dict[str, Any]] = []

    @create_step("look")
    async def look() -> None:
        seen.append(structlog.contextvars.get_contextvars())

    workflow = create_workflow("logged", lambda: look())
    async with Runtime(database=db_url, workflows=[workflow]) as rt:
        result = await workflow(rt.container).run()
    assert seen == [{"run_id": result.run_id, "workflow": "logged", "step": "look"}]
    assert structlog.contextvars.get_contextvars() == {}


async def test_a_handler_logs_with_its_event_and_subscriber(db_url: str) -> None:
    seen: list[dict[str, Any]] = []
    done = anyio.Event()

    async def handler(args: SubscriberArgs) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        done.set()

    subscriber = Subscriber("auditor", handler, SubscriberConfig("order.placed"))
    async with Runtime(database=db_url, subscribers=[subscriber]) as rt:
        event_id = await rt.emit("order.placed", {"id": "o1"})
        with anyio.fail_after(5):
            await done.wait()
    assert seen == [{"event_id": event_id, "event": "order.placed", "subscriber": "auditor"}]


async def test_a_job_logs_with_its_name_run_and_step(db_url: str) -> None:
    seen: list[dict[str, Any]] = []

    async def tick(container: Any) -> None:
        seen.append(structlog.contextvars.get_contextvars())

    job = Job(tick, JobConfig(name="ticker", schedule="0 0 1 1 *"))
    async with Runtime(database=db_url, jobs=[job]) as rt:
        result = await rt.registry.get("job-ticker")(rt.container).run()
    assert seen == [
        {"run_id": result.run_id, "workflow": "job-ticker", "step": "run-job", "job": "ticker"}
    ]


# -- a run that ends badly says so, once ------------------------------------------------

ENDINGS = ("run_failed", "run_canceled", "run_compensation_failed")


def endings(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run-end lines among captured ones, without the timestamps."""
    return [{k: v for k, v in e.items() if k != "timestamp"} for e in logs if e["event"] in ENDINGS]


@create_step("charge")
async def charge() -> None:
    raise RuntimeError("card declined")


async def test_an_inline_run_that_fails_logs_one_warning(db_url: str) -> None:
    workflow = create_workflow("checkout", lambda: charge())
    with capture_logs() as logs:
        async with Runtime(database=db_url, workflows=[workflow]) as rt:
            result = await workflow(rt.container).run(throw_on_error=False)
    assert endings(logs) == [
        {
            "event": "run_failed",
            "log_level": "warning",
            "run_id": result.run_id,
            "workflow": "checkout",
            "step": "charge",
            "error": "RuntimeError: card declined",
        }
    ]


async def test_a_background_durable_run_that_fails_logs_one_warning(db_url: str) -> None:
    async def fetch() -> None:
        raise ValueError("upstream 503")

    @workflow(name="sync")
    async def sync(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("fetch", fetch)

    with capture_logs() as logs:
        async with Runtime(database=db_url, workflows=[sync]) as rt:
            handle = await rt.workflows.run("sync")
            with pytest.raises(RunFailed):
                await handle.result(timeout=10)
    assert endings(logs) == [
        {
            "event": "run_failed",
            "log_level": "warning",
            "run_id": handle.run_id,
            "workflow": "sync",
            "step": "fetch",
            "error": "ValueError: upstream 503",
        }
    ]


async def test_a_failed_compensation_logs_one_error_naming_both_steps(db_url: str) -> None:
    @create_step("hold")
    async def hold() -> str:
        return "h1"

    @hold.compensate
    async def release(held: str) -> None:
        raise OSError("inventory unreachable")

    workflow = create_workflow("reserve", lambda: [hold(), charge()])
    with capture_logs() as logs:
        async with Runtime(database=db_url, workflows=[workflow]) as rt:
            result = await workflow(rt.container).run(throw_on_error=False)
    assert result.status is RunStatus.COMPENSATION_FAILED
    assert endings(logs) == [
        {
            "event": "run_compensation_failed",
            "log_level": "error",
            "run_id": result.run_id,
            "workflow": "reserve",
            "step": "charge",
            "error": "RuntimeError: card declined",
            "compensation_step": "hold",
            "compensation_error": "OSError: inventory unreachable",
        }
    ]


async def test_a_canceled_run_logs_one_warning_whether_or_not_a_worker_undoes_it(
    db_url: str,
) -> None:
    undone: list[str] = []

    @create_step("hold")
    async def hold() -> str:
        return "h1"

    @hold.compensate
    async def release(held: str) -> None:
        undone.append(held)

    @workflow(name="nap")
    async def nap(ctx: WorkflowContext[Any]) -> None:
        await ctx.step(hold)
        await ctx.sleep("wait", 3600)

    @workflow(name="idle")
    async def idle(ctx: WorkflowContext[Any]) -> None:
        await ctx.sleep("wait", 3600)

    with capture_logs() as logs:
        async with Runtime(database=db_url, workflows=[nap, idle]) as rt:
            handle = await rt.workflows.run("nap")
            await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
            await rt.workflows.cancel(handle.run_id)
            with pytest.raises(RunFailed):
                await handle.result(timeout=10)
            # Never started: it ends canceled in the store at once, with nothing to undo.
            queued = await rt.workflows.run("idle", delay=3600)
            await rt.workflows.cancel(queued.run_id)
    assert undone == ["h1"]
    canceled = {
        "event": "run_canceled",
        "log_level": "warning",
        "step": None,
        "error": "Canceled: canceled by an operator",
    }
    assert endings(logs) == [
        {**canceled, "run_id": handle.run_id, "workflow": "nap"},
        {**canceled, "run_id": queued.run_id, "workflow": "idle"},
    ]


async def test_a_completed_run_logs_no_end_line(db_url: str) -> None:
    @create_step("fine")
    async def fine() -> str:
        return "ok"

    workflow = create_workflow("fine", lambda: fine())
    with capture_logs() as logs:
        async with Runtime(database=db_url, workflows=[workflow]) as rt:
            await workflow(rt.container).run()
    assert endings(logs) == []


async def test_the_start_up_line_counts_workflows_as_workflows_list_does(db_url: str) -> None:
    """Each version is a workflow of its own; a job's ``job-<name>`` workflow is not one."""

    @workflow(name="welcome", version="v1")
    async def welcome_v1(ctx: WorkflowContext[Any]) -> None: ...

    @workflow(name="welcome", version="v2")
    async def welcome_v2(ctx: WorkflowContext[Any]) -> None: ...

    @create_step("tick")
    async def tick() -> None: ...

    nightly = create_workflow("nightly", lambda: tick())
    jobs = [
        Job(lambda container: None, JobConfig(name=name, schedule="0 0 * * *"))
        for name in ("sweep", "audit")
    ]
    defined = [welcome_v1, welcome_v2, nightly]
    with capture_logs() as logs:
        async with Runtime(database=db_url, workflows=defined, jobs=jobs):
            pass
    (started,) = [e for e in logs if e["event"] == "runtime_started"]
    assert (started["workflows"], started["jobs"]) == (3, 2)


# -- who configures structlog -------------------------------------------------------------


async def test_a_runtime_leaves_the_logging_set_up_to_the_application(db_url: str) -> None:
    """Bug: entering a Runtime configured structlog for the whole process, so an
    application that embeds it and configures structlog later, or not at all, got the
    runtime's choice instead of its own."""
    structlog.reset_defaults()
    async with Runtime(database=db_url):
        assert not structlog.is_configured()


def test_configure_logging_writes_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    structlog.get_logger("app").info("app_started", port=8000)
    captured = capsys.readouterr()
    assert captured.out == ""
    line = json.loads(captured.err)
    assert (line["event"], line["port"], line["level"]) == ("app_started", 8000, "info")
