"""Three ``runtime start`` processes on one database share the work, each piece done once.

DESIGN 5's promises across processes, shown with real processes (:mod:`.cluster`): three
services of ``tests/multiprocess/project`` on one fresh PostgreSQL schema, started once
for the module. In order:

1. hundreds of events emitted from another process are each handled by exactly one run,
   and every step of every run executed exactly once, by whichever process took it;
2. meanwhile the every-second schedule fired exactly once per nominal second across the
   three (no duplicate firing, run or execution; no gap of more than a few seconds);
3. a process SIGKILLed in the middle of a step has its run finished by another, which
   knew it dead at once (its pid is gone on this host), the interrupted step run again
   and no finished step repeated;
4. a process frozen in the middle of a step (SIGSTOP: a machine cut off, whose pid says
   nothing here) keeps its run until its lease expires, then another finishes it, the
   same way;
5. SIGTERM stops each process with exit code 0.

The processes run with a lease of :data:`LEASE` seconds instead of 30
(:mod:`tests.multiprocess.launch`), so that expiry takes seconds.

The tests share the processes and run in this order (each later one relies on the
processes the earlier left running: a replacement is started for the killed one).
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime import SyncClient
from runtime.clock import from_text
from runtime.engine.leases import LEASE_TTL
from tests.helpers.databases import BACKENDS, database
from tests.multiprocess.cluster import Cluster

PROCESSES = 3
EVENTS = 300
FULFIL_STEPS = ("reserve", "charge", "ship")

WORK_DEADLINE = 90.0
"""Seconds for the three processes to finish every event's run (about ten on an idle
machine; the CI machine's two cores are shared)."""

BEAT_WINDOW = 8.0
"""Seconds of every-second firings (at least) the schedule test judges."""

SETTLE = 3.0
"""Seconds before now after which firings are not judged yet (a firing in flight)."""

LONGEST_GAP = 5
"""Consecutive nominal seconds that may pass without a run started (a catch-up after
every process was starved of CPU records the seconds between as ``missed``)."""

LEASE = 8.0
"""The processes' lease TTL (seconds): their heartbeat beats every third of it."""

TAKEOVER_DEADLINE = 20.0
"""Seconds for another process to finish the killed (or frozen) process's run."""

STOP_DEADLINE = 15.0
"""Seconds between SIGTERM and the exit (the project's shutdown grace is 5 s)."""

assert LEASE < LEASE_TTL


@pytest.fixture(scope="module", params=BACKENDS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    folder: Path = tmp_path_factory.mktemp("multiprocess")
    with database(request.param, folder) as db:
        cluster = Cluster(folder / "app", db, LEASE)
        try:
            services = [cluster.start() for _ in range(PROCESSES)]
            cluster.wait_ready(*services)
            cluster.up_at = time.time()
            yield cluster
        finally:
            cluster.kill_all()


def lines_of(log: list[dict[str, Any]], run_id: str) -> list[tuple[str, str, int]]:
    """A run's execution-log lines as (step, phase, pid), in order."""
    return [(e["step"], e["phase"], e["pid"]) for e in log if e["run_id"] == run_id]


def released_workers(cluster: Cluster) -> set[str]:
    """The workers any service logged it released as dead (their process gone)."""
    return {
        worker
        for service in cluster.services
        for line in service.log()
        if line.get("event") == "dead_workers_released"
        for worker in line["workers"]
    }


def pids_of(log: list[dict[str, Any]], run_id: str, step: str, phase: str) -> list[int]:
    return [pid for s, p, pid in lines_of(log, run_id) if (s, p) == (step, phase)]


# -- 1. events: one run each, each step once --------------------------------------------


def test_each_event_is_handled_by_one_run_whose_steps_each_ran_once(cluster: Cluster) -> None:
    db = cluster.db
    with SyncClient(db.url) as client:
        ids = [client.emit("order.placed", {"n": n}) for n in range(EVENTS)]
    assert len(set(ids)) == EVENTS

    def all_handled() -> bool:
        # The run completes before its handler returns and the delivery is marked done.
        completed = db.scalar(
            "SELECT count(*) FROM runs WHERE workflow = 'fulfil' AND status = 'completed'"
        )
        done = db.scalar("SELECT count(*) FROM deliveries WHERE status = 'done'")
        return bool(completed == done == EVENTS)

    cluster.wait(f"{EVENTS} events handled, their runs completed", all_handled, WORK_DEADLINE)

    # One run per event (its transaction id is the event's id), with the event's output.
    number = {id: n for id, n in zip(ids, range(EVENTS), strict=True)}
    runs = db.query(
        "SELECT id, idempotency_key, status, output FROM runs WHERE workflow = 'fulfil'"
    )
    assert len(runs) == EVENTS
    assert {key for _, key, _, _ in runs} == set(ids)
    for _, key, status, output in runs:
        n = number[key]
        assert (status, json.loads(output)) == ("completed", {"n": n, "total": 3 * n}), key
    # One delivery per event, done at its first attempt.
    deliveries = db.query("SELECT event_id, subscriber_id, status, attempts FROM deliveries")
    assert sorted(deliveries) == sorted((id, "orders", "done", 1) for id in ids)
    # Every step of every run executed exactly once (started once, finished once).
    log = cluster.execution_log()
    by_run: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line in log:
        by_run[line["run_id"]].append((line["step"], line["phase"]))
    for run_id, _, _, _ in runs:
        assert sorted(by_run[run_id]) == sorted(
            (step, phase) for step in FULFIL_STEPS for phase in ("start", "done")
        ), run_id
    # The work was shared: more than one process executed steps.
    workers = Counter(line["pid"] for line in log if line["run_id"] in {r[0] for r in runs})
    assert len(workers) >= 2, workers
    assert set(workers) <= {s.pid for s in cluster.services}


# -- 2. the every-second schedule: once per second across the three ----------------------


def _second(text: str) -> datetime:
    moment = from_text(text)
    assert moment.microsecond == 0, text
    return moment


def test_the_every_second_schedule_fires_once_per_second_across_the_processes(
    cluster: Cluster,
) -> None:
    db = cluster.db
    up_at = cluster.up_at
    # Judge whole seconds from one after all three were up to a few before now.
    cluster.wait(
        f"{BEAT_WINDOW} s of firings",
        lambda: time.time() >= up_at + 1 + BEAT_WINDOW + SETTLE,
        BEAT_WINDOW + SETTLE + 2,
    )
    first = datetime.fromtimestamp(int(up_at) + 2, UTC)
    last = datetime.fromtimestamp(int(time.time() - SETTLE), UTC)
    window = [first + timedelta(seconds=s) for s in range(int((last - first).total_seconds()) + 1)]
    assert len(window) >= BEAT_WINDOW

    firings = db.query("SELECT schedule, nominal_at, outcome, run_id FROM schedule_firings")
    [schedule] = {schedule for schedule, _, _, _ in firings}  # the project's only one
    nominal = Counter(_second(at) for _, at, _, _ in firings)
    assert all(n == 1 for n in nominal.values()), nominal
    outcome = {_second(at): (out, run_id) for _, at, out, run_id in firings}
    # Every second of the window was fired (once: the key is unique), and runs started.
    missing = [at for at in window if at not in outcome]
    assert missing == [], f"seconds never fired: {missing}"
    gap = longest = 0
    for at in window:
        gap = 0 if outcome[at][0] == "started" else gap + 1
        longest = max(longest, gap)
    assert longest <= LONGEST_GAP, {at.isoformat(): outcome[at][0] for at in window}
    started = {at: run_id for at, (out, run_id) in outcome.items() if out == "started"}
    assert sum(1 for at in window if at in started) >= len(window) - 2 * LONGEST_GAP

    # Each started firing made one run, keyed by its nominal time, and its step ran once.
    runs = {
        run_id: (key, status)
        for run_id, key, status in db.query(
            "SELECT id, idempotency_key, status FROM runs WHERE workflow = 'beat'"
        )
    }
    assert set(runs) == set(started.values())
    assert len({key for key, _ in runs.values()}) == len(runs)

    def window_runs_done() -> bool:
        statuses = dict(
            db.query("SELECT id, status FROM runs WHERE workflow = 'beat'"),
        )
        return all(statuses[started[at]] == "completed" for at in window if at in started)

    cluster.wait("the window's beat runs to complete", window_runs_done, WORK_DEADLINE)
    log = cluster.execution_log()
    for at in window:
        if at in started:
            run_id = started[at]
            assert runs[run_id][0] == f"schedule:{schedule}:{at.isoformat()}"
            assert [(s, p) for s, p, _ in lines_of(log, run_id)] == [
                ("tick", "start"),
                ("tick", "done"),
            ], run_id


# -- 3. SIGKILL mid-step: another process finishes the run -------------------------------


def test_a_run_whose_process_is_killed_mid_step_is_finished_by_another(
    cluster: Cluster,
) -> None:
    with SyncClient(cluster.db.url) as client:
        run_id = client.run("stall", {"token": "t-1"}).run_id

        def reached() -> int | None:
            pids = pids_of(cluster.execution_log(), run_id, "hold", "reached")
            return pids[0] if pids else None

        holder = cluster.wait("the stall run to reach its held step", reached, WORK_DEADLINE)
        victim = cluster.by_pid(holder)
        held = client.get_run(run_id)
        assert held.status.value == "running"
        # Killed with "before" committed and "hold" under way, not finished.
        assert {s.name: s.status.value for s in held.steps if s.status.value == "completed"} == {
            "before": "completed"
        }
        [victim_worker] = cluster.db.query("SELECT id FROM workers WHERE pid = ?", holder)[0]
        victim.sigkill()
        assert victim.process.returncode == -signal.SIGKILL
        killed_at = time.monotonic()
        cluster.release("t-1")

        def completed() -> bool:
            return client.get_run(run_id, steps=False).status.value == "completed"

        cluster.wait("another process to finish the run", completed, TAKEOVER_DEADLINE)
        took = time.monotonic() - killed_at
        record = client.get_run(run_id)

    assert took < TAKEOVER_DEADLINE
    # Known dead by its pid, not by its lease: a survivor said it released the worker.
    assert victim_worker in released_workers(cluster), [s.tail(5) for s in cluster.running()]
    assert record.output == {"token": "t-1", "before": True, "held": True, "after": True}
    assert [(s.name, s.status.value, s.attempts) for s in record.steps] == [
        ("before", "completed", 1),
        ("hold", "completed", 1),  # the attempt the kill cut off does not count
        ("after", "completed", 1),
    ]
    log = cluster.execution_log()
    [rescuer] = pids_of(log, run_id, "hold", "done")
    assert rescuer != holder
    assert rescuer in {s.pid for s in cluster.running()}
    # The finished step did not run again; the interrupted one ran again, elsewhere.
    assert pids_of(log, run_id, "before", "start") == [holder]
    assert pids_of(log, run_id, "before", "done") == [holder]
    assert pids_of(log, run_id, "hold", "start") == [holder, rescuer]
    assert pids_of(log, run_id, "after", "start") == [rescuer]
    assert pids_of(log, run_id, "after", "done") == [rescuer]

    # Three processes again, for what follows.
    cluster.wait_ready(cluster.start())


# -- 4. a frozen process: its run is taken over once its lease expired ----------------------


def test_a_run_whose_process_is_frozen_mid_step_is_taken_over_when_its_lease_expires(
    cluster: Cluster,
) -> None:
    with SyncClient(cluster.db.url) as client:
        run_id = client.run("stall", {"token": "t-2"}).run_id

        def reached() -> int | None:
            pids = pids_of(cluster.execution_log(), run_id, "hold", "reached")
            return pids[0] if pids else None

        holder = cluster.wait("the stall run to reach its held step", reached, WORK_DEADLINE)
        frozen = cluster.by_pid(holder)
        [frozen_worker] = cluster.db.query("SELECT id FROM workers WHERE pid = ?", holder)[0]
        # Alive to this host (a stopped process is not a dead one), silent to the database.
        frozen.process.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            cluster.release("t-2")

            def completed() -> bool:
                return client.get_run(run_id, steps=False).status.value == "completed"

            others = tuple(s for s in cluster.running() if s is not frozen)
            cluster.wait("another process to finish the run", completed, TAKEOVER_DEADLINE, others)
            took = time.monotonic() - frozen_at
            record = client.get_run(run_id)
            # Before the SIGKILL below, after which its pid is gone and it may be released.
            released = released_workers(cluster)
        finally:
            frozen.process.send_signal(signal.SIGKILL)  # never to wake up and finish the step
            frozen.process.wait(10)

    # Not taken while the lease could still be live (its last beat at most a third of
    # the lease before the freeze), nor by the dead-pid rule.
    assert took >= LEASE * 2 / 3, took
    assert frozen_worker not in released
    assert record.output == {"token": "t-2", "before": True, "held": True, "after": True}
    assert [(s.name, s.status.value, s.attempts) for s in record.steps] == [
        ("before", "completed", 1),
        ("hold", "completed", 1),
        ("after", "completed", 1),
    ]
    log = cluster.execution_log()
    [rescuer] = pids_of(log, run_id, "hold", "done")
    assert rescuer != holder
    assert rescuer in {s.pid for s in cluster.running()}
    assert pids_of(log, run_id, "before", "start") == [holder]
    assert pids_of(log, run_id, "before", "done") == [holder]
    assert pids_of(log, run_id, "hold", "start") == [holder, rescuer]
    assert pids_of(log, run_id, "after", "start") == [rescuer]
    assert pids_of(log, run_id, "after", "done") == [rescuer]

    cluster.wait_ready(cluster.start())


# -- 5. SIGTERM: each process stops with exit 0 -------------------------------------------


def test_sigterm_stops_each_process_with_exit_code_0(cluster: Cluster) -> None:
    services = cluster.running()
    assert len(services) == PROCESSES
    for service in services:
        service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            code = service.process.wait(STOP_DEADLINE)
        except Exception:
            pytest.fail(f"service {service.pid} still running {STOP_DEADLINE} s after SIGTERM")
        assert code == 0, service.tail()
        assert service.logged("runtime_stopped"), service.tail()
