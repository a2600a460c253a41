"""A job's workflow (``job-<name>``) run through a Runtime: handler, retries, job.failed."""

from __future__ import annotations

import sys
from datetime import timedelta

import anyio

from runtime.container import Container
from runtime.models import RunStatus, StepStatus
from runtime.scheduling.entries import JOB_FAILED, JOB_STEP, job_workflow
from runtime.sdk.composition import create_workflow
from runtime.sdk.specs import Job, JobConfig
from runtime.sdk.steps import create_step
from runtime.service import Runtime
from runtime.testing import ManualClock
from tests.helpers.backends import opened
from tests.scheduling.conftest import START


async def test_the_job_workflow_calls_the_handler_with_the_container(db_url: str) -> None:
    seen: list[Container] = []

    async def handler(container: Container) -> None:
        seen.append(container)

    wf = job_workflow(Job(handler=handler, config=JobConfig(name="cleanup", schedule="0 2 * * *")))
    assert wf.name == "job-cleanup"
    async with Runtime(database=db_url, workflows=[wf]) as rt:
        result = await wf(rt.container).run()
        run = await rt.store.get_run(result.run_id)
    assert result.status is RunStatus.COMPLETED
    assert seen == [rt.container]
    assert [s.name for s in run.steps] == [JOB_STEP]


async def test_a_failing_handler_is_retried_per_max_retries(db_url: str) -> None:
    calls = {"n": 0}

    async def handler(container: Container) -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError(f"attempt {calls['n']} failed")

    config = JobConfig(name="sync", schedule="0 * * * *", max_retries=2, retry_interval=0)
    wf = job_workflow(Job(handler=handler, config=config))
    async with Runtime(database=db_url, workflows=[wf]) as rt:
        with anyio.fail_after(10):
            result = await wf(rt.container).run()
        run = await rt.store.get_run(result.run_id)
        events = await rt.store.list_events(name=JOB_FAILED)
    assert result.status is RunStatus.COMPLETED
    assert calls["n"] == 3
    assert run.steps[0].attempts == 3
    assert events.items == []


async def test_a_job_that_fails_for_good_ends_failed_and_publishes_job_failed(
    db_url: str,
) -> None:
    calls = {"n": 0}

    async def handler(container: Container) -> None:
        calls["n"] += 1
        raise ValueError("the CMS is down")

    config = JobConfig(name="sync-cms", schedule="0 * * * *", max_retries=1, retry_interval=0)
    wf = job_workflow(Job(handler=handler, config=config))
    async with Runtime(database=db_url, workflows=[wf]) as rt:
        with anyio.fail_after(10):
            result = await wf(rt.container).run(throw_on_error=False)
    assert result.status is RunStatus.FAILED
    assert calls["n"] == 2
    assert result.errors[0].type == "ValueError"

    async with opened(db_url) as store:
        run = await store.get_run(result.run_id)
        assert run.steps[0].status is StepStatus.FAILED
        [event] = (await store.list_events(name=JOB_FAILED)).items
    assert event.source_run_id == result.run_id
    assert event.data["job"] == "sync-cms"
    assert event.data["run_id"] == result.run_id
    assert event.data["workflow"] == "job-sync-cms"
    assert event.data["status"] == "failed"
    assert "the CMS is down" in event.data["error"]["message"]


async def test_a_workflow_run_by_a_job_gets_a_transaction_id_derived_from_the_job_run(
    db_url: str,
) -> None:
    inner_steps = {"n": 0}
    handler_calls = {"n": 0}

    async def count() -> None:
        inner_steps["n"] += 1

    step = create_step("count", count)
    inner = create_workflow("inner", lambda: step())

    async def handler(container: Container) -> None:
        handler_calls["n"] += 1
        await inner(container).run()
        if handler_calls["n"] == 1:
            raise ConnectionError("failed after starting the inner workflow")

    config = JobConfig(name="outer", schedule="0 * * * *", max_retries=1, retry_interval=0)
    wf = job_workflow(Job(handler=handler, config=config))
    async with Runtime(database=db_url, workflows=[wf, inner]) as rt:
        with anyio.fail_after(10):
            result = await wf(rt.container).run(transaction_id="nightly-1")
            # The job's run again, with the same transaction id: the same run.
            again = await wf(rt.container).run(transaction_id="nightly-1")
        inner_runs = (await rt.store.list_runs(workflow="inner")).runs
    assert result.status is RunStatus.COMPLETED
    assert again.run_id == result.run_id
    # The retry ran the handler again, which found the inner run it had started.
    assert handler_calls["n"] == 2
    assert inner_steps["n"] == 1
    assert [r.idempotency_key for r in inner_runs] == [f"{result.run_id}:job:inner"]


async def test_a_runtime_with_jobs_runs_them_at_their_nominal_times(db_url: str) -> None:
    clock = ManualClock(START)  # 12:00:30 UTC
    ran = anyio.Event()

    async def handler(container: Container) -> None:
        ran.set()

    job = Job(handler=handler, config=JobConfig(name="tick", schedule="* * * * *"))
    async with Runtime(database=db_url, jobs=[job], clock=clock) as rt:
        with anyio.fail_after(10):
            clock.advance(timedelta(seconds=30))
            await ran.wait()
            [firing] = await rt.store.list_firings("tick")
            assert firing.run_id is not None
            run = await rt.workflows.wait(firing.run_id)
        assert rt.scheduler.statistics().started == 1  # the parts are gone after exit
    assert firing.outcome == "started"
    assert (run.workflow, run.status) == ("job-tick", RunStatus.COMPLETED)


async def test_a_job_calling_sys_exit_fails_and_the_worker_goes_on(db_url: str) -> None:
    """Bug: ``sys.exit()`` (or a KeyboardInterrupt, or a CancelledError of its own) in a
    job's handler killed the service, which then crash-looped on the pending run. Now the
    firing fails like any failed job, job.failed is published, and the worker goes on."""

    async def handler(container: Container) -> None:
        sys.exit(3)

    async def fine(container: Container) -> None:
        return None

    exiting = job_workflow(
        Job(handler=handler, config=JobConfig(name="exits", schedule="0 2 * * *"))
    )
    other = job_workflow(Job(handler=fine, config=JobConfig(name="fine", schedule="0 2 * * *")))
    async with Runtime(database=db_url, workflows=[exiting, other]) as rt:
        failed = await rt.workflows.run("job-exits")
        with anyio.fail_after(10):
            record = await rt.workflows.wait(failed.run_id)
        following = await rt.workflows.run("job-fine")
        with anyio.fail_after(10):
            assert (await rt.workflows.wait(following.run_id)).status is RunStatus.COMPLETED
        events = await rt.store.list_events(name=JOB_FAILED)
    assert record.status is RunStatus.FAILED
    assert record.error is not None and record.error.type == "SystemExit"
    assert [e.data["job"] for e in events.items] == ["exits"]
