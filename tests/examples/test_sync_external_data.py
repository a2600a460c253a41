"""Pause and resume (seed 003): hold every active run of a workflow, then let them all go.

The runtime runs on a ``ManualClock`` so that the runs' one-minute durable sleep
passes when the test moves the clock. The runs are caught in each status a run can
be paused from: ``sleeping`` (in the sleep), ``running`` (inside a step, held open
by the demo API) and ``pending`` (started with a delay).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from runtime import Client, Container, InvalidTransitionError, RunStatus, Runtime
from runtime.engine.leases import LEASE_TTL
from runtime.testing import ManualClock
from tests.examples.faults import count_calls, hold
from tests.examples.sonamu import sonamu_runtime, steps_of, wait_statuses
from tests.helpers.definitions import QUIET_TIME
from tests.helpers.waiting import wait_until
from workflows.sync_external_data import (
    RATE_LIMIT_WINDOW,
    handle_external_api_outage,
    handle_external_api_recovery,
    pause_all,
    resume_all,
)

CHANGES = [{"id": "c1", "field": "email"}, {"id": "c2", "field": "name"}]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(QUIET_TIME)


@pytest.fixture
async def rt(db_url: str, container: Container, clock: ManualClock) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container, clock) as runtime:
        yield runtime


async def wake_sleepers(rt: Runtime, clock: ManualClock) -> None:
    """Move the clock past the rate-limit window and tell the worker to look."""
    clock.advance(RATE_LIMIT_WINDOW + 1)
    rt.worker.poke()


async def due_for_the_worker(rt: Runtime, clock: ManualClock) -> list[str]:
    """The runs a worker scan would take now (paused runs must not be among them)."""
    now = clock.now()
    runs = await rt.store.recoverable_runs(
        rt.registry.names(), now, now - timedelta(seconds=LEASE_TTL), 100
    )
    return [run.id for run in runs]


async def test_one_sync_fetches_sleeps_and_applies(
    rt: Runtime, container: Container, clock: ManualClock
) -> None:
    handle = await rt.workflows.run("sync_external_data", {"source": "crm"})
    await wait_statuses(rt, [handle.run_id], {RunStatus.SLEEPING})

    await wake_sleepers(rt, clock)

    assert await handle.result(timeout=5) == {"applied": 2}
    assert container.resolve("external_data").applied == {"crm": CHANGES}


async def test_pause_all_then_resume_all_and_every_run_completes(
    rt: Runtime, container: Container, clock: ManualClock
) -> None:
    api = container.resolve("external_data")
    calls = count_calls(api)
    workflows = rt.workflows
    # Two runs sleeping in the rate-limit window ...
    sleeping = [
        (await workflows.run("sync_external_data", {"source": "crm"})).run_id for _ in range(2)
    ]
    await wait_statuses(rt, sleeping, {RunStatus.SLEEPING})
    # ... one running, inside its fetch (the API holds the call open) ...
    gate = hold(api, "fetch_changes")
    running = (await workflows.run("sync_external_data", {"source": "crm"})).run_id
    await wait_until(lambda: gate.waiting == 1)
    # ... and one pending, due in half a minute.
    pending = (await workflows.run("sync_external_data", {"source": "crm"}, delay=30)).run_id
    everyone = [*sleeping, running, pending]
    assert [r.status for r in await wait_statuses(rt, everyone, set(RunStatus))] == [
        RunStatus.SLEEPING,
        RunStatus.SLEEPING,
        RunStatus.RUNNING,
        RunStatus.PENDING,
    ]

    paused = await pause_all(workflows, "sync_external_data")

    assert sorted(paused) == sorted(everyone)
    # The running one finishes its step first, then stops before the next one.
    gate.release()
    records = await wait_statuses(rt, everyone, {RunStatus.PAUSED})
    assert [step.name for step in records[2].steps] == ["fetch_changes"]
    # Pausing again changes nothing and is no error.
    assert await pause_all(workflows, "sync_external_data") == []
    # Every wake-up time passes: paused runs stay where they are, and nothing is applied.
    await wake_sleepers(rt, clock)
    assert await due_for_the_worker(rt, clock) == []
    assert api.applied == {}

    resumed = await resume_all(workflows, "sync_external_data")

    assert sorted(resumed) == sorted(everyone)
    # The sleepers are past their wake-up time and finish; the other two fetch (the
    # pending one) or go straight on to the sleep (the running one), and sleep.
    await wait_statuses(rt, everyone, {RunStatus.SLEEPING, RunStatus.COMPLETED})
    await wake_sleepers(rt, clock)
    done = await wait_statuses(rt, everyone, {RunStatus.COMPLETED})
    assert {run.status for run in done} == {RunStatus.COMPLETED}
    for run in done:
        assert run.output == {"applied": 2}
        # No step ran twice, paused or not.
        assert steps_of(run) == [
            ("fetch_changes", "completed", 1),
            ("rate_limit", "completed", 1),
            ("apply_changes", "completed", 1),
        ]
    assert calls["fetch_changes"] == 4
    assert api.applied == {"crm": CHANGES * 4}


async def test_the_outage_handlers_leave_ended_runs_and_other_workflows_alone(
    rt: Runtime, container: Container, clock: ManualClock, db_url: str
) -> None:
    finished = await rt.workflows.run("sync_external_data", {"source": "crm"})
    await wait_statuses(rt, [finished.run_id], {RunStatus.SLEEPING})
    await wake_sleepers(rt, clock)
    await finished.result(timeout=5)
    active = await rt.workflows.run("sync_external_data", {"source": "crm"})
    other = await rt.workflows.run("backup_data", {"type": "full"}, delay=30)
    await wait_statuses(rt, [active.run_id], {RunStatus.SLEEPING})

    assert await handle_external_api_outage(rt.workflows) == [active.run_id]

    assert await active.status() is RunStatus.PAUSED
    assert await finished.status() is RunStatus.COMPLETED
    assert await other.status() is RunStatus.PENDING
    # An ended run refuses a pause: that is why the helpers list active runs only.
    with pytest.raises(InvalidTransitionError):
        await rt.workflows.pause(finished.run_id)

    # The recovery handler works from another process too, through a Client.
    async with Client(db_url, clock=clock) as client:  # on the runtime's (virtual) time
        assert await handle_external_api_recovery(client) == [active.run_id]
    await wake_sleepers(rt, clock)
    assert await active.result(timeout=5) == {"applied": 2}


async def test_a_short_outage_leaves_no_run_paused(
    rt: Runtime, container: Container, clock: ManualClock
) -> None:
    # The API recovers while a run paused mid-step is still finishing that step.
    api = container.resolve("external_data")
    gate = hold(api, "fetch_changes")
    handle = await rt.workflows.run("sync_external_data", {"source": "crm"})
    await wait_until(lambda: gate.waiting == 1)

    assert await pause_all(rt.workflows, "sync_external_data") == [handle.run_id]
    run = await rt.workflows.get_run(handle.run_id)
    assert (run.status, run.control) == (RunStatus.RUNNING, "pause")
    assert await resume_all(rt.workflows, "sync_external_data") == [handle.run_id]
    gate.release()

    # The pause was withdrawn: the run goes on to its sleep, not to paused.
    [run] = await wait_statuses(rt, [handle.run_id], {RunStatus.SLEEPING, RunStatus.PAUSED})
    assert run.status is RunStatus.SLEEPING
    await wake_sleepers(rt, clock)
    assert await handle.result(timeout=5) == {"applied": 2}
