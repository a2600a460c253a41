"""A SIGKILL during a sleeping run, a paused run and a running step loses nothing.

Each scenario runs the ``@workflow`` of :mod:`tests.engine.crash_durable_app` (steps
``reserve``, ``price``, a durable sleep, ``charge``) in a real child process on a
database (a SQLite file, or a PostgreSQL schema: every scenario runs on both), kills it
with SIGKILL at a chosen moment, starts it again in ``wait`` mode (it only
waits: whatever finishes the run is the runtime's recovery), and checks that after the
restart the run does what its status says:

- killed while ``sleeping``: it stays sleeping until its wake-up time, then completes;
- killed while ``paused``: it stays paused, running nothing, until the test resumes it
  through a :class:`~runtime.SyncClient`, then completes;
- killed inside a step: that step runs again (started twice, completed once).

In every case the steps before the kill ran exactly once, and the result equals an
uninterrupted run's. The child's execution log is fsynced line by line, so it tells what
ran, how often, in which process and when. Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runtime import RunRecord, RunStatus, SyncClient
from tests.helpers.crashkit import Child, Processes, poll, read_log, reaping
from tests.helpers.databases import BACKENDS, database

APP = "tests.engine.crash_durable_app"
STEPS = ("reserve", "price", "charge")
SLEEP = "cool_down"

WATCH_POLL = 0.02
"""Seconds between two looks while watching that nothing happens for a while."""

START_DEADLINE = 10.0
"""Seconds for a child to start and reach the moment it is killed at (or to finish)."""

RESUME_DEADLINE = 10.0
"""Seconds for a restarted child to finish the run (a dead lease takes 30 s to expire)."""

PROMPT = 5.0
"""Seconds, from the restarted runtime being up, within which a due run must have ended."""

LONG_NAP = 3.0
"""The sleep of the sleeping scenario: long enough to watch the restarted run sleep."""

SHORT_NAP = 0.2
"""The sleep of the other scenarios and of the reference run."""

PAUSED_WATCH = 1.0
"""Seconds the restarted process is watched doing nothing with a paused run."""

EXPECTED_OUTPUT = {"reservation": "res-o-7", "total": 26, "payment": "pay-o-7-26"}


# -- running the child ----------------------------------------------------------


class Scenario(Processes):
    """One scenario's processes: a database, a log, a release file."""

    @property
    def release(self) -> Path:
        return self.dir / "release"

    def spawn(
        self,
        name: str,
        *,
        mode: str = "start",
        block: str | None = None,
        release: bool = False,
        nap: float = SHORT_NAP,
    ) -> Child:
        """Start the app as process ``name``."""
        argv = [sys.executable, "-m", APP, "--mode", mode, "--nap", str(nap)]
        if block is not None:
            argv += ["--block", block]
        if release:
            argv += ["--release", str(self.release)]
        return self.start(name, argv)


@contextlib.contextmanager
def _scenario(directory: Path, backend: str) -> Iterator[Scenario]:
    with database(backend, directory) as db, reaping(Scenario(directory, db, [])) as s:
        yield s


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every scenario runs on each backend (the reference too: one per backend)."""
    param: str = request.param
    return param


@pytest.fixture
def scenario(tmp_path: Path, backend: str) -> Iterator[Scenario]:
    with _scenario(tmp_path, backend) as s:
        yield s


@pytest.fixture
def client(scenario: Scenario) -> Iterator[SyncClient]:
    """A client of the scenario's database, as a web app in another process would have.

    Opened lazily (at its first call), so only once a child has created the database.
    """
    with SyncClient(scenario.database.url) as sync_client:
        yield sync_client


# -- reading the evidence --------------------------------------------------------


def executions(log: list[dict[str, Any]], name: str, event: str) -> list[int]:
    """The pids of the processes that logged ``event`` for step ``name``, in order."""
    return [e["pid"] for e in log if (e.get("name"), e["event"]) == (name, event)]


def logged(scenario: Scenario, child: Child, event: str) -> dict[str, Any] | None:
    """The first ``event`` line ``child`` wrote, if it wrote one."""
    return next(
        (e for e in read_log(scenario.log) if e["event"] == event and e["pid"] == child.pid),
        None,
    )


def the_run(client: SyncClient) -> RunRecord | None:
    """The one run in the database (``None`` while there is none yet)."""
    runs = client.list_runs(limit=10).runs
    assert len(runs) <= 1, runs
    return client.get_run(runs[0].id) if runs else None


def run_in(client: SyncClient, status: RunStatus) -> Callable[[], RunRecord | None]:
    def check() -> RunRecord | None:
        run = the_run(client)
        return run if run is not None and run.status is status else None

    return check


def steps(run: RunRecord) -> dict[str, str]:
    """Step name -> status, as committed."""
    return {step.name: step.status.value for step in run.steps}


def comparable(run: dict[str, Any]) -> dict[str, Any]:
    """A finished run minus ids, times and the sleep's wake-up time."""
    return {
        "status": run["status"],
        "output": run["output"],
        "error": run["error"],
        "owner_id": run["owner_id"],
        "steps": [
            {
                "seq": s["seq"],
                "name": s["name"],
                "status": s["status"],
                "attempts": s["attempts"],
                "output": None if s["name"] == SLEEP else s["output"],
            }
            for s in run["steps"]
        ],
    }


def restart(scenario: Scenario, run_id: str) -> tuple[Child, float]:
    """Start the process again, in ``wait`` mode and unblocked; it and when it was ready."""
    child = scenario.spawn("restarted", mode="wait")
    ready = poll("ready", lambda: logged(scenario, child, "ready"), child, START_DEADLINE)
    return child, ready["at"]


def check_finished(outcome: dict[str, Any], run_id: str) -> None:
    """The restarted process finished the same run, on its own, promptly."""
    assert outcome["run"]["id"] == run_id
    assert outcome["runs_in_store"] == 1
    # Nobody called run() in the restarted process: its worker drove the run (once per
    # stretch between two parkings).
    assert outcome["resumed_by_recovery"] >= 1
    assert outcome["run"]["status"] == "completed"
    assert outcome["run"]["output"] == EXPECTED_OUTPUT


# -- the reference: an uninterrupted run -----------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, backend: str) -> dict[str, Any]:
    with _scenario(tmp_path_factory.mktemp("reference"), backend) as s:
        outcome = s.spawn("uninterrupted").wait_outcome(START_DEADLINE)
        log = read_log(s.log)
    assert outcome["run"]["status"] == "completed"
    assert outcome["run"]["output"] == EXPECTED_OUTPUT
    assert [(st["name"], st["status"], st["attempts"]) for st in outcome["run"]["steps"]] == [
        ("reserve", "completed", 1),
        ("price", "completed", 1),
        (SLEEP, "completed", 1),
        ("charge", "completed", 1),
    ]
    assert [(e.get("name"), e["event"]) for e in log if e["event"] != "ready"] == [
        (name, event) for name in STEPS for event in ("started", "completed")
    ]
    return outcome


# -- the scenarios ------------------------------------------------------------------


def test_a_run_killed_while_sleeping_sleeps_until_its_wake_up_time_then_completes(
    scenario: Scenario, client: SyncClient, reference: dict[str, Any]
) -> None:
    first = scenario.spawn("first", nap=LONG_NAP)
    asleep = poll("sleeping", run_in(client, RunStatus.SLEEPING), first, START_DEADLINE)
    assert steps(asleep) == {"reserve": "completed", "price": "completed", SLEEP: "running"}
    wake_at = datetime.fromisoformat(asleep.steps[2].output["wake_at"]).timestamp()
    first.kill()

    second, ready_at = restart(scenario, asleep.id)

    # Up before the wake-up time: until then the run sleeps and nothing runs.
    assert ready_at < wake_at - 0.5, "the restart took too long to watch the run sleep"
    watched = 0
    while time.time() < wake_at - 0.2:
        run = the_run(client)
        assert run is not None and run.status is RunStatus.SLEEPING, run
        assert executions(read_log(scenario.log), "charge", "started") == []
        watched += 1
        time.sleep(WATCH_POLL)
    assert watched > 0
    outcome = second.wait_outcome(RESUME_DEADLINE)

    check_finished(outcome, asleep.id)
    log = read_log(scenario.log)
    # Woken at its time (not before), by the restarted process.
    [charge_started] = [e for e in log if (e.get("name"), e["event"]) == ("charge", "started")]
    assert charge_started["pid"] == second.pid
    assert charge_started["at"] >= wake_at
    # The steps before the sleep ran exactly once, before the kill.
    for name in ("reserve", "price"):
        assert executions(log, name, "started") == [first.pid], name
        assert executions(log, name, "completed") == [first.pid], name
    assert executions(log, "charge", "completed") == [second.pid]
    assert comparable(outcome["run"]) == comparable(reference["run"])


def test_a_run_killed_while_paused_stays_paused_until_resumed(
    scenario: Scenario, client: SyncClient, reference: dict[str, Any]
) -> None:
    first = scenario.spawn("first", block="step:price", release=True)
    reached = poll("in price", lambda: logged(scenario, first, "reached"), first, START_DEADLINE)
    # Paused from another process while a step runs: the step finishes, then the run stops.
    requested = client.pause(reached["run_id"])
    assert (requested.status, requested.control) == (RunStatus.RUNNING, "pause")
    scenario.release.touch()
    paused = poll("paused", run_in(client, RunStatus.PAUSED), first, START_DEADLINE)
    assert steps(paused) == {"reserve": "completed", "price": "completed"}
    first.kill()

    second, ready_at = restart(scenario, paused.id)

    # The restarted runtime is up and has scanned: the paused run is left alone.
    lines = len(read_log(scenario.log))
    while time.time() < ready_at + PAUSED_WATCH:
        run = the_run(client)
        assert run is not None and run.status is RunStatus.PAUSED, run
        assert second.alive(), second.stderr()
        time.sleep(WATCH_POLL)
    assert len(read_log(scenario.log)) == lines, "nothing may run while the run is paused"

    resumed = client.resume(paused.id)
    assert resumed.status is RunStatus.PENDING
    outcome = second.wait_outcome(RESUME_DEADLINE)

    check_finished(outcome, paused.id)
    log = read_log(scenario.log)
    for name in ("reserve", "price"):
        assert executions(log, name, "started") == [first.pid], name
        assert executions(log, name, "completed") == [first.pid], name
    assert executions(log, "charge", "started") == [second.pid]
    assert executions(log, "charge", "completed") == [second.pid]
    assert comparable(outcome["run"]) == comparable(reference["run"])


def test_a_run_killed_inside_a_step_runs_that_step_again(
    scenario: Scenario, client: SyncClient, reference: dict[str, Any]
) -> None:
    first = scenario.spawn("first", block="step:charge")
    reached = poll("in charge", lambda: logged(scenario, first, "reached"), first, START_DEADLINE)
    running = the_run(client)
    assert running is not None and running.id == reached["run_id"]
    assert running.status is RunStatus.RUNNING
    # Killed with everything before charge committed, and charge under way.
    assert steps(running) == {"reserve": "completed", "price": "completed", SLEEP: "completed"}
    first.kill()

    began = time.monotonic()
    second, _ = restart(scenario, running.id)
    outcome = second.wait_outcome(RESUME_DEADLINE)

    # Taken over at once (the dead process is known dead), not after its lease expired.
    assert outcome["elapsed"] < PROMPT, outcome["elapsed"]
    assert time.monotonic() - began < RESUME_DEADLINE
    check_finished(outcome, running.id)
    log = read_log(scenario.log)
    for name in ("reserve", "price"):
        assert executions(log, name, "started") == [first.pid], name
        assert executions(log, name, "completed") == [first.pid], name
    # Started twice (once in each process), completed once; the attempt cut off by the
    # kill does not count.
    assert executions(log, "charge", "started") == [first.pid, second.pid]
    assert executions(log, "charge", "completed") == [second.pid]
    charge = next(s for s in outcome["run"]["steps"] if s["name"] == "charge")
    assert charge["attempts"] == 1
    assert comparable(outcome["run"]) == comparable(reference["run"])
