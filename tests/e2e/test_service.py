"""``runtime start`` as a real process: events from other processes, SIGTERM, SIGKILL, dead letters.

Each test copies ``tests/e2e/project`` (a three-step ``greet`` workflow and two
subscribers of ``user.signed_up`` that run it) into a temporary folder, starts
``python -m runtime --project <copy> start`` on it, and talks to it only the
way an application would: events emitted from other processes through
``SyncClient`` (the Django/Flask case) and ``Client``, the ``runtime`` CLI, and
the database. The service is stopped with SIGTERM, or killed with SIGKILL and
started again. Every wait is bounded, and every child is killed in ``finally``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from runtime import Client
from tests.helpers.processes import Project

SUBSCRIBERS = ("welcome", "audit")
STEPS = ("compose", "send", "archive")

DELIVERY_DEADLINE = 10.0
"""Seconds for events to be delivered and their runs to complete (they take well under one)."""

PROMPT = 5.0
"""Seconds a restarted service may take to finish what the killed one left: far less than
the 30 s after which a dead worker's deliveries and leases would be retaken anyway."""

STOP_DEADLINE = 5.0
"""Seconds between SIGTERM and the exit of an idle service."""


def greeted(name: str) -> dict[str, object]:
    """The output of a completed ``greet`` run for ``name``."""
    return {"sent": f"Hello {name}", "archived": True}


def transaction_ids(event_ids: list[str], subscribers: tuple[str, ...] = SUBSCRIBERS) -> set[str]:
    """The transaction ids the runs started for these events get: one per subscriber."""
    return {f"{s}:{e}:greet" for e in event_ids for s in subscribers}


async def test_events_from_other_processes_reach_the_service_which_stops_on_sigterm(
    project: Project,
) -> None:
    service = project.start_service()
    await service.wait_ready()

    # A web app in another process: a SyncClient (Django, Flask) ...
    emitter = project.emitter(1)
    [from_sync] = await emitter.event_ids()
    # ... and an async Client (FastAPI, a script); here, the test's own process.
    async with Client(project.url) as client:
        from_async = await client.emit("user.signed_up", {"name": "async"})

        expected = transaction_ids([from_sync, from_async])

        async def all_completed() -> bool:
            page = await client.list_runs(workflow="greet", status=["completed"])
            return {run.idempotency_key for run in page.runs} == expected

        await service.wait_for(all_completed, DELIVERY_DEADLINE, "the greet runs")
        page = await client.list_runs(workflow="greet")

    outputs = {run.idempotency_key: run.output for run in page.runs}
    assert outputs == {
        **{f"{s}:{from_sync}:greet": greeted("user-0") for s in SUBSCRIBERS},
        **{f"{s}:{from_async}:greet": greeted("async") for s in SUBSCRIBERS},
    }
    assert {d["status"] for d in project.deliveries().values()} == {"done"}
    # The CLI reads the same database while the service runs.
    listed = project.cli("runs", "list", "--workflow", "greet", "--json")
    assert listed.returncode == 0, listed.stderr

    started = time.monotonic()
    assert await service.stop(STOP_DEADLINE) == 0, service.tail()
    assert time.monotonic() - started < STOP_DEADLINE
    assert service.logged("runtime_stopped")
    # A graceful stop leaves no worker behind for the next start to wait out.
    assert project.query("SELECT id FROM workers") == []


async def test_a_killed_service_restarts_and_delivers_every_event_once(project: Project) -> None:
    count = 20
    expected_runs = count * len(SUBSCRIBERS)
    first = project.start_service()
    await first.wait_ready()

    # Twenty sign-ups, 10 ms apart, from another process; kill the service when a
    # third of the step executions are done, while the events are still coming.
    emitter = project.emitter(count, pause=0.01)

    def done_steps() -> int:
        return sum(1 for line in project.execution_log() if line.get("phase") == "done")

    await first.wait_for(lambda: done_steps() >= expected_runs, DELIVERY_DEADLINE, "steps")
    first.sigkill()

    # What the killed process had committed: these steps must never run again.
    committed = set(project.query("SELECT run_id, name FROM steps WHERE status = 'completed'"))
    completed_before = [r for r in project.runs().values() if r["status"] == "completed"]
    assert len(completed_before) < expected_runs, "the kill came too late to test anything"
    event_ids = await emitter.event_ids()
    assert len(event_ids) == count

    second = project.start_service()
    await second.wait_ready()
    restarted = time.monotonic()

    def finished() -> bool:
        runs = project.runs()
        deliveries = project.deliveries()
        return (
            sum(1 for r in runs.values() if r["status"] == "completed") == expected_runs
            and len(deliveries) == expected_runs
            and all(d["status"] == "done" for d in deliveries.values())
        )

    await second.wait_for(finished, PROMPT, "the restarted service to finish")
    took = time.monotonic() - restarted
    assert took < PROMPT

    # One completed run per (event, subscriber), found again through the derived
    # transaction id: the redelivered handler resumed its run, it did not start another.
    runs = project.runs()
    assert set(runs) == transaction_ids(event_ids)
    for i, event_id in enumerate(event_ids):
        for subscriber in SUBSCRIBERS:
            run = runs[f"{subscriber}:{event_id}:greet"]
            assert (run["status"], run["output"]) == ("completed", greeted(f"user-{i}"))
    # Every delivery done (a delivery cut off by the kill counts that attempt).
    deliveries = project.deliveries()
    assert set(deliveries) == {(e, s) for e in event_ids for s in SUBSCRIBERS}
    assert all(d["status"] == "done" and d["attempts"] <= 2 for d in deliveries.values())

    # The execution log: a step whose checkpoint the killed process had committed
    # never ran in the new one; no step finished twice in one process; every step
    # of every run finished. (A step that finished its work but was killed before
    # its checkpoint committed runs again: at least once, as the design says.)
    run_ids = {run["id"] for run in runs.values()}
    steps = [line for line in project.execution_log() if "step" in line]
    assert {line["pid"] for line in steps} <= {first.pid, second.pid}
    done = Counter(
        (line["run_id"], line["step"], line["pid"]) for line in steps if line["phase"] == "done"
    )
    assert max(done.values()) == 1
    for run_id in run_ids:
        for step in STEPS:
            in_first, in_second = done[run_id, step, first.pid], done[run_id, step, second.pid]
            assert in_first + in_second >= 1, (run_id, step)
            if (run_id, step) in committed:
                assert in_first == 1
                assert not any(
                    line["pid"] == second.pid and (line["run_id"], line["step"]) == (run_id, step)
                    for line in steps
                ), f"{step} of {run_id} was committed, then ran again after the restart"

    assert await second.stop(STOP_DEADLINE) == 0, second.tail()


async def test_a_failing_subscriber_goes_dead_and_its_redrive_leaves_the_others_alone(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path / "app", extra_subscribers=("always_fails.py",))
    try:
        service = project.start_service()
        await service.wait_ready()
        async with Client(project.url) as client:
            event_id = await client.emit("user.signed_up", {"name": "Ada"})

        def delivery(subscriber: str) -> dict[str, object] | None:
            return project.deliveries().get((event_id, subscriber))

        def handled(subscriber: str) -> int:
            return sum(
                1
                for line in project.execution_log()
                if line.get("handler") == subscriber and line["event_id"] == event_id
            )

        def dead_after(attempts: int) -> bool:
            """The failing delivery is dead, its handler having run ``attempts`` times in all."""
            failing = delivery("always-fails")
            if failing is None or failing["status"] != "dead":
                return False
            return handled("always-fails") == attempts

        # Two attempts (max_attempts=2), a second or so apart, then dead.
        await service.wait_for(lambda: dead_after(2), DELIVERY_DEADLINE, "a dead delivery")

        def good_runs_completed() -> bool:
            runs = project.runs().values()
            return len(runs) == len(SUBSCRIBERS) and all(r["status"] == "completed" for r in runs)

        await service.wait_for(good_runs_completed, DELIVERY_DEADLINE, "the good runs")
        failing = delivery("always-fails")
        assert failing is not None
        assert failing["attempts"] == 2
        assert failing["error"]["message"] == "the mail server is down"
        for good in SUBSCRIBERS:
            assert delivery(good) == {"status": "done", "attempts": 1, "error": None}
            assert handled(good) == 1

        dead = project.cli("events", "dead", "--json")
        assert dead.returncode == 0, dead.stderr
        assert '"always-fails"' in dead.stdout
        redrive = project.cli("events", "redrive", "--all", "--json")
        assert redrive.returncode == 0, redrive.stderr
        assert '"redriven": 1' in redrive.stdout

        # The redriven delivery gets two fresh attempts and dies again ...
        await service.wait_for(lambda: dead_after(4), DELIVERY_DEADLINE, "the redelivery")
        # ... and the subscribers that had succeeded were not run again.
        for good in SUBSCRIBERS:
            assert delivery(good) == {"status": "done", "attempts": 1, "error": None}
            assert handled(good) == 1
        assert set(project.runs()) == transaction_ids([event_id])
        run_steps = Counter(
            line["run_id"] for line in project.execution_log() if line.get("phase") == "done"
        )
        assert sorted(run_steps.values()) == [len(STEPS)] * len(SUBSCRIBERS)

        assert await service.stop(STOP_DEADLINE) == 0, service.tail()
    finally:
        project.kill_all()
