"""Crash tests: SIGKILL a real process mid-run, start it again, and check what happened.

Each scenario runs the saga of :mod:`tests.engine.crash_app` in a child process that stops
at a chosen point (after logging ``reached``), kills it with SIGKILL there, and restarts it
on the same database (a SQLite file, or a PostgreSQL schema: every scenario runs on
both), either calling ``run()`` again with the same transaction id or
only waiting for the runtime's recovery to finish the run. The outcome is compared with an
uninterrupted run of the same input in another database, and the execution log (fsynced
line by line by the child) shows what ran how many times, in which process.

Every wait is a poll with a short interval and a deadline; no test sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.engine.leases import LEASE_TTL
from tests.helpers.crashkit import Child, Processes, read_log, reaping, wait_reached
from tests.helpers.databases import BACKENDS, Database, database

APP = "tests.engine.crash_app"
TRANSACTION_ID = "crash-order-o-42"
STEPS = ("reserve", "price", "charge", "ship")

START_DEADLINE = 15.0
"""Seconds for a child to start and reach its block point (or finish, unblocked)."""

RESUME_DEADLINE = 10.0
"""Seconds for a restarted child to finish the run: a third of the lease TTL, so a run that
is only taken over once the dead worker's lease expires (30 s) fails the test."""

PROMPT = 5.0
"""Seconds, from the restarted runtime being up, within which the run must have ended."""

EXPECTED_RESULT = {
    "order_id": "o-42",
    "reservation": "res-o-42",
    "total": 2 * 7 + 3 * 4,
    "payment": "pay-o-42-26",
    "tracking": "trk-o-42-pay-o-42-26",
}
SHIPPING_ERROR = {
    "step": "ship",
    "type": "PermanentFailure",
    "message": "carrier refused the parcel",
    "traceback": None,
}

assert RESUME_DEADLINE < LEASE_TTL / 2, (
    "the deadlines must tell a prompt resume from a lease expiry"
)


# -- running the child ----------------------------------------------------------


class Scenario(Processes):
    """One scenario's processes: a database, a log, and where outcomes go."""

    def spawn(
        self, name: str, *, mode: str = "run", block: str | None = None, fail: bool = False
    ) -> Child:
        """Start ``crash_app`` as process ``name``."""
        argv = [sys.executable, "-m", APP, "--mode", mode, "--transaction-id", TRANSACTION_ID]
        if block is not None:
            argv += ["--block", block]
        if fail:
            argv.append("--fail-shipping")
        return self.start(name, argv)


@contextlib.contextmanager
def _scenario(directory: Path, backend: str) -> Iterator[Scenario]:
    with database(backend, directory) as db, reaping(Scenario(directory, db, [])) as s:
        yield s


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every scenario runs on each backend (the references too: one per backend)."""
    param: str = request.param
    return param


@pytest.fixture
def scenario(tmp_path: Path, backend: str) -> Iterator[Scenario]:
    with _scenario(tmp_path, backend) as s:
        yield s


# -- reading the evidence --------------------------------------------------------


def stored_run(db: Database) -> dict[str, Any]:
    """The run as another process sees it in the database: what was committed, nothing more."""
    runs = db.query("SELECT id, status, owner_id FROM runs")
    assert len(runs) == 1, runs
    run_id, status, owner = runs[0]
    steps = db.query("SELECT name, status FROM steps WHERE run_id = ? ORDER BY seq", run_id)
    return {"id": run_id, "status": status, "owner_id": owner, "steps": dict(steps)}


def count(log: list[dict[str, Any]], kind: str, name: str, event: str) -> int:
    return sum(1 for e in log if (e.get("kind"), e.get("name"), e["event"]) == (kind, name, event))


def pids(log: list[dict[str, Any]], kind: str, name: str, event: str) -> list[int]:
    return [
        e["pid"] for e in log if (e.get("kind"), e.get("name"), e["event"]) == (kind, name, event)
    ]


def without_process(entry: dict[str, Any]) -> dict[str, Any]:
    """A log entry minus what differs between databases and processes."""
    return {k: v for k, v in entry.items() if k not in ("pid", "run_id", "at")}


def comparable(run: dict[str, Any]) -> dict[str, Any]:
    """A stored run minus ids, owners and times: what must equal the uninterrupted run's."""
    keep = (
        "seq",
        "name",
        "status",
        "attempts",
        "output",
        "compensate_input",
        "error",
        "completed_order",
    )
    return {
        "status": run["status"],
        "input": run["input"],
        "output": run["output"],
        "error": run["error"],
        "owner_id": run["owner_id"],
        "steps": [{k: step[k] for k in keep} for step in run["steps"]],
    }


def returned(outcome: dict[str, Any]) -> dict[str, Any]:
    """What ``run()`` returned, minus the run id."""
    return {k: v for k, v in outcome["returned"].items() if k != "run_id"}


# -- uninterrupted runs, the reference -------------------------------------------


def _uninterrupted(
    directory: Path, backend: str, *, fail: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with _scenario(directory, backend) as s:
        outcome = s.spawn("uninterrupted", fail=fail).wait_outcome(START_DEADLINE)
        return outcome, read_log(s.log)


@pytest.fixture(scope="module")
def completed_reference(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return _uninterrupted(tmp_path_factory.mktemp("reference-completed"), backend, fail=False)


@pytest.fixture(scope="module")
def failed_reference(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return _uninterrupted(tmp_path_factory.mktemp("reference-failed"), backend, fail=True)


def test_uninterrupted_runs_are_the_reference(
    completed_reference: tuple[dict[str, Any], list[dict[str, Any]]],
    failed_reference: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    # The references must themselves be right, or "equal to the reference" proves nothing.
    outcome, log = completed_reference
    assert outcome["returned"]["status"] == "completed"
    assert outcome["returned"]["result"] == EXPECTED_RESULT
    assert outcome["returned"]["errors"] == []
    assert outcome["run"]["output"] == EXPECTED_RESULT
    assert [
        (s["name"], s["status"], s["attempts"], s["completed_order"])
        for s in outcome["run"]["steps"]
    ] == [(name, "completed", 1, i) for i, name in enumerate(STEPS, start=1)]
    assert [(e["kind"], e["name"], e["event"]) for e in log] == [
        ("step", name, event) for name in STEPS for event in ("started", "completed")
    ]

    outcome, log = failed_reference
    assert outcome["returned"]["status"] == "failed"
    assert outcome["returned"]["result"] is None
    assert outcome["returned"]["errors"] == [SHIPPING_ERROR]
    assert outcome["run"]["error"] == SHIPPING_ERROR
    assert [(s["name"], s["status"]) for s in outcome["run"]["steps"]] == [
        (name, "compensated") for name in STEPS
    ]
    # The failed step's own compensation first, then the completed ones, newest first.
    assert [(e["kind"], e["name"], e["event"]) for e in log] == [
        *(("step", name, event) for name in STEPS[:3] for event in ("started", "completed")),
        ("step", "ship", "started"),
        ("step", "ship", "failed"),
        *(("comp", name, event) for name in reversed(STEPS) for event in ("started", "completed")),
    ]


# -- the crash scenarios -----------------------------------------------------------


def restart(
    scenario: Scenario, mode: str, run_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start the process again, unblocked; its outcome (checked prompt) and the full log."""
    began = time.monotonic()
    outcome = scenario.spawn(f"restarted-{mode}", mode=mode).wait_outcome(RESUME_DEADLINE)
    took = time.monotonic() - began
    # Promptness, twice: inside the child from the runtime being up, and from our side
    # including the interpreter's start. Waiting out the dead worker's lease would take 30 s.
    assert outcome["elapsed"] < PROMPT, outcome["elapsed"]
    assert took < RESUME_DEADLINE
    # The same run was finished, not a new one started.
    assert outcome["run"]["id"] == run_id
    assert outcome["runs_in_store"] == 1
    if mode == "wait":
        # Nobody called run(): the runtime's recovery took the run over on its own.
        assert outcome["resumed_by_recovery"] == 1
        assert "returned" not in outcome
    else:
        assert outcome["returned"]["run_id"] == run_id
    return outcome, read_log(scenario.log)


RESTART_MODES = pytest.mark.parametrize("mode", ["wait", "run"])


@RESTART_MODES
def test_kill_after_a_checkpoint_resumes_without_repeating_steps(
    scenario: Scenario,
    mode: str,
    completed_reference: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    first = scenario.spawn("first", block="before:charge")
    reached = wait_reached(scenario.log, first, "before:charge", START_DEADLINE)
    # Killed with reserve and price committed, and charge not yet begun.
    stored = stored_run(scenario.database)
    assert stored["id"] == reached["run_id"]
    assert stored["status"] == "running"
    assert stored["owner_id"] is not None
    assert stored["steps"] == {"reserve": "completed", "price": "completed"}
    first.kill()

    outcome, log = restart(scenario, mode, reached["run_id"])

    reference, reference_log = completed_reference
    assert comparable(outcome["run"]) == comparable(reference["run"])
    assert outcome["run"]["output"] == EXPECTED_RESULT
    if mode == "run":
        assert returned(outcome) == returned(reference)
    # Every step ran exactly once, the first two before the kill, the rest after it.
    second = outcome["pid"]
    for name in STEPS:
        assert count(log, "step", name, "started") == 1, name
        assert count(log, "step", name, "completed") == 1, name
    assert pids(log, "step", "price", "completed") == [first.proc.pid]
    assert pids(log, "step", "charge", "started") == [second]
    assert [without_process(e) for e in log if e["event"] != "reached"] == [
        without_process(e) for e in reference_log
    ]


@RESTART_MODES
def test_kill_in_the_middle_of_a_step_runs_that_step_again(
    scenario: Scenario,
    mode: str,
    completed_reference: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    first = scenario.spawn("first", block="step:ship")
    reached = wait_reached(scenario.log, first, "step:ship", START_DEADLINE)
    stored = stored_run(scenario.database)
    assert stored["status"] == "running"
    assert stored["steps"] == {"reserve": "completed", "price": "completed", "charge": "completed"}
    first.kill()

    outcome, log = restart(scenario, mode, reached["run_id"])

    reference, reference_log = completed_reference
    assert comparable(outcome["run"]) == comparable(reference["run"])
    if mode == "run":
        assert returned(outcome) == returned(reference)
    second = outcome["pid"]
    for name in STEPS[:3]:
        assert pids(log, "step", name, "started") == [first.proc.pid], name
        assert pids(log, "step", name, "completed") == [first.proc.pid], name
    # The interrupted step started twice (once in each process) and completed once; the
    # attempt cut off by the kill does not count as an attempt.
    assert pids(log, "step", "ship", "started") == [first.proc.pid, second]
    assert pids(log, "step", "ship", "completed") == [second]
    assert [e["attempt"] for e in log if e["event"] == "started"] == [1, 1, 1, 1, 1]
    ship = next(s for s in outcome["run"]["steps"] if s["name"] == "ship")
    assert ship["attempts"] == 1
    # Take away the cut-off attempt and the log is the uninterrupted run's.
    interrupted = next(
        i for i, e in enumerate(log) if e["event"] == "started" and e["name"] == "ship"
    )
    rest = [e for i, e in enumerate(log) if i != interrupted and e["event"] != "reached"]
    assert [without_process(e) for e in rest] == [without_process(e) for e in reference_log]


@RESTART_MODES
def test_kill_in_the_middle_of_a_compensation_resumes_the_rollback(
    scenario: Scenario,
    mode: str,
    failed_reference: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    first = scenario.spawn("first", block="comp:price", fail=True)
    reached = wait_reached(scenario.log, first, "comp:price", START_DEADLINE)
    # Killed with ship's and charge's compensations committed, price's under way.
    stored = stored_run(scenario.database)
    assert stored["status"] == "compensating"
    assert stored["steps"] == {
        "reserve": "completed",
        "price": "compensating",
        "charge": "compensated",
        "ship": "compensated",
    }
    first.kill()

    outcome, log = restart(scenario, mode, reached["run_id"])

    reference, reference_log = failed_reference
    assert outcome["run"]["status"] == "failed"
    assert outcome["run"]["error"] == SHIPPING_ERROR
    assert comparable(outcome["run"]) == comparable(reference["run"])
    if mode == "run":
        assert returned(outcome) == returned(reference)
    second = outcome["pid"]
    # The forward steps are not run again by the restart.
    for name in STEPS:
        assert pids(log, "step", name, "started") == [first.proc.pid], name
    # Compensations finished before the kill are not run again; the interrupted one is;
    # the one not yet begun runs once, after it.
    assert pids(log, "comp", "ship", "completed") == [first.proc.pid]
    assert pids(log, "comp", "charge", "completed") == [first.proc.pid]
    assert pids(log, "comp", "price", "started") == [first.proc.pid, second]
    assert pids(log, "comp", "price", "completed") == [second]
    assert pids(log, "comp", "reserve", "started") == [second]
    assert pids(log, "comp", "reserve", "completed") == [second]
    for name in ("ship", "charge", "reserve"):
        assert count(log, "comp", name, "started") == 1, name
    interrupted = next(
        i
        for i, e in enumerate(log)
        if (e.get("kind"), e.get("name"), e["event"]) == ("comp", "price", "started")
    )
    rest = [e for i, e in enumerate(log) if i != interrupted and e["event"] != "reached"]
    assert [without_process(e) for e in rest] == [without_process(e) for e in reference_log]


def test_a_finished_run_is_returned_not_run_again_after_a_restart(
    scenario: Scenario,
) -> None:
    # The other side of "never repeat a finished step": once recovery finished the run, a
    # later run() with the same transaction id returns it and runs nothing.
    first = scenario.spawn("first", block="step:charge")
    reached = wait_reached(scenario.log, first, "step:charge", START_DEADLINE)
    first.kill()
    recovered, _ = restart(scenario, "wait", reached["run_id"])
    lines = len(read_log(scenario.log))

    again = scenario.spawn("again", mode="run").wait_outcome(RESUME_DEADLINE)

    assert again["returned"]["run_id"] == reached["run_id"]
    assert again["returned"]["status"] == "completed"
    assert again["returned"]["result"] == EXPECTED_RESULT
    assert again["resumed_by_recovery"] == 0
    assert again["run"] == recovered["run"]
    assert len(read_log(scenario.log)) == lines
