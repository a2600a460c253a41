"""A rollback cut off by SIGKILL, once or several times in a row, still undoes everything, in order.

The saga of :mod:`tests.engine.rollback_app` (both authoring styles) has five steps; the
last, ``ship``, fails for good, so the rollback runs five compensations: ``ship``'s own
first, then ``pack``, ``charge``, ``price``, ``reserve`` (DESIGN 2.3). Each scenario runs
the app in a real child process that stops at a kill point of the rollback, SIGKILLs it
there, starts it again (it only waits: the runtime's recovery resumes the rollback), and
does so again for each further kill point; the last start runs unblocked to the end.

Kill points: ``failed:ship`` (the failure committed, the run ``compensating``, nothing
undone yet), then for each compensation NAME: ``before:NAME`` (marked ``compensating``,
not begun), ``inside:NAME`` (begun, not finished), ``after:NAME`` (its ``compensated``
checkpoint committed; after the last one, only the run's final write is left). After the
last restart:

- every compensation's completion was logged exactly once (one cut off inside may have
  started more than once), and none started again once its completion was committed;
- the completions are in DESIGN 2.3's order, and no compensation started before one
  that comes earlier in that order had completed;
- each compensation got its input (``ship``'s the ``compensate_input`` of its
  ``permanent_failure``), the forward steps ran once, the run ended ``failed`` with the
  step's error and every step ``compensated``.

Children are forked by one :mod:`tests.helpers.forkserver` per module (a start costs a
fork, not an interpreter and its imports). Every wait polls with a deadline.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.rollback_app import CANCEL_LABEL, CAUGHT, FAILING, REFUSED, STEPS
from tests.helpers.crashkit import ForkedChild, ForkedProcesses, ForkServer, read_log, wait_reached
from tests.helpers.databases import BACKENDS, database

STYLES = ("composition", "durable")
ROLLBACK = (FAILING, *reversed(STEPS[:-1]))
"""DESIGN 2.3's order: the failing step's own compensation, then the completed steps, newest
first."""

KINDS = ("failed", "before", "inside", "after")
POINTS = (
    f"failed:{FAILING}",
    *(f"{kind}:{name}" for name in ROLLBACK for kind in KINDS[1:]),
)
"""Every kill point of the rollback, in the order an uninterrupted rollback reaches them."""

TWICE = (
    ("failed:ship", "inside:ship"),
    ("inside:ship", "inside:ship"),  # the failing step's own compensation cut off twice
    ("inside:ship", "inside:charge"),  # its own, then one of a completed step
    ("before:ship", "after:pack"),
    ("after:ship", "before:pack"),
    ("inside:charge", "after:reserve"),
)
THRICE = (
    ("inside:ship", "inside:ship", "inside:ship"),
    ("inside:ship", "inside:pack", "inside:price"),
    ("before:ship", "inside:charge", "after:reserve"),
)

REACH_DEADLINE = 10.0
"""Seconds for a child to start and reach its kill point."""

END_DEADLINE = 10.0
"""Seconds for the last child to finish the rollback (a dead lease takes 30 s to expire)."""


def _position(point: str) -> tuple[int, int]:
    kind, name = point.split(":")
    return ROLLBACK.index(name), KINDS.index(kind)


def _reachable(points: tuple[str, ...]) -> bool:
    """Whether a correct rollback reaches each point after a kill at the one before."""
    for first, then in itertools.pairwise(points):
        index, kind = _position(first)
        before = KINDS.index("before")
        resumes_at = (index + 1, before) if KINDS[kind] == "after" else (index, before)
        if _position(then) < resumes_at:
            return False
    return True


assert all(_reachable(points) for points in TWICE + THRICE)


# -- running the children -------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    forks = ForkServer("tests.engine.rollback_app")
    try:
        yield forks
    finally:
        forks.close()


class Scenario(ForkedProcesses):
    """One scenario: its database, its log, its children."""

    style: str = "composition"

    def spawn(self, name: str, *, mode: str, block: str | None = None) -> ForkedChild:
        argv = ["--style", self.style, "--mode", mode]
        if block is not None:
            argv += ["--block", block]
        return self.start(name, argv)


@pytest.fixture(params=BACKENDS)
def scenario(
    request: pytest.FixtureRequest, tmp_path: Path, server: ForkServer
) -> Iterator[Scenario]:
    with database(request.param, tmp_path) as db:
        s = Scenario(tmp_path, db, server, [])
        try:
            yield s
        finally:
            s.kill_all()


def crash_through(scenario: Scenario, style: str, points: tuple[str, ...]) -> dict[str, Any]:
    """Kill the run at each of ``points`` in turn, then let a last process finish it."""
    scenario.style = style
    mode = "start"
    for number, point in enumerate(points, start=1):
        child = scenario.spawn(f"killed-{number}", mode=mode, block=point)
        wait_reached(scenario.log, child, point, REACH_DEADLINE)
        child.kill()
        mode = "wait"
    last = scenario.spawn("last", mode=mode)
    return last.wait_outcome(END_DEADLINE)


# -- judging the outcome ------------------------------------------------------------------


def comp_events(log: list[dict[str, Any]], event: str) -> list[str]:
    return [e["name"] for e in log if e.get("kind") == "comp" and e["event"] == event]


def check_rolled_back(
    outcome: dict[str, Any],
    log: list[dict[str, Any]],
    order: tuple[str, ...] = ROLLBACK,
    failed: tuple[str, ...] = (FAILING,),
) -> None:
    """Everything the module docstring promises after the last restart.

    ``order``: the compensations' order; ``failed``: the steps that failed themselves.
    """
    run = outcome["run"]
    history = [(e.get("kind"), e.get("name"), e["event"]) for e in log]
    # Exactly once each, in order.
    assert comp_events(log, "completed") == list(order), history
    # None started before an earlier one completed, and none after its own completion.
    done: set[str] = set()
    for entry in log:
        if entry.get("kind") != "comp":
            continue
        name = entry["name"]
        assert name not in done, f"{name} ran again after it completed: {history}"
        index = order.index(name)
        assert set(order[:index]) <= done, f"{name} ran out of order: {history}"
        if entry["event"] == "completed":
            done.add(name)
    # Each compensation got its own input.
    for entry in log:
        if entry.get("kind") == "comp":
            expected = CANCEL_LABEL if entry["name"] in failed else {"undo": entry["name"]}
            assert entry["input"] == expected, entry
    # The forward steps ran once, before any compensation.
    forward = [(e["name"], e["event"]) for e in log if e.get("kind") == "step"]
    assert forward == [
        (name, event)
        for name in STEPS
        for event in ("started", "failed" if name in failed else "completed")
    ]
    assert run["status"] == "failed", run
    # (A durable run's error carries the traceback of the StepFailed its function raised.)
    error = {k: v for k, v in run["error"].items() if k != "traceback"}
    assert error == {"step": FAILING, "type": "PermanentFailure", "message": REFUSED}
    assert [(s["name"], s["status"]) for s in run["steps"]] == [
        (name, "compensated") for name in STEPS
    ]
    assert outcome["runs_in_store"] == 1


# -- the scenarios ----------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_an_uninterrupted_rollback_is_the_reference(scenario: Scenario, style: str) -> None:
    outcome = crash_through(scenario, style, ())
    log = read_log(scenario.log)
    check_rolled_back(outcome, log)
    # One process did everything: each compensation started once.
    assert comp_events(log, "started") == list(ROLLBACK)


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("style", STYLES)
def test_a_rollback_killed_once_finishes_in_order(
    scenario: Scenario, style: str, point: str
) -> None:
    outcome = crash_through(scenario, style, (point,))
    log = read_log(scenario.log)
    check_rolled_back(outcome, log)
    kind, name = point.split(":")
    # The compensation cut off inside runs again (started twice); no other does.
    again = [name] if kind == "inside" else []
    started = comp_events(log, "started")
    assert sorted(started) == sorted([*ROLLBACK, *again])
    # The last process did the rest, resumed by the runtime's recovery.
    assert outcome["resumed_by_recovery"] >= 1


@pytest.mark.parametrize("points", TWICE + THRICE, ids="+".join)
@pytest.mark.parametrize("style", STYLES)
def test_a_rollback_killed_several_times_in_a_row_finishes_in_order(
    scenario: Scenario, style: str, points: tuple[str, ...]
) -> None:
    outcome = crash_through(scenario, style, points)
    log = read_log(scenario.log)
    check_rolled_back(outcome, log)
    cut_inside = [point.split(":")[1] for point in points if point.startswith("inside:")]
    assert sorted(comp_events(log, "started")) == sorted([*ROLLBACK, *cut_inside])


CAUGHT_ROLLBACK = (CAUGHT, FAILING, *reversed(STEPS[2:-1]), STEPS[0])
"""The ``caught`` style's order: the own compensations of the steps that failed (in step
order), then the completed steps', newest first."""


@pytest.mark.parametrize(
    "points",
    [(), ("inside:pack",), ("inside:charge",), ("after:ship", "inside:reserve")],
    ids=lambda points: "+".join(points) or "uninterrupted",
)
def test_a_resumed_rollback_replays_past_a_step_that_failed_and_was_compensated(
    scenario: Scenario, points: tuple[str, ...]
) -> None:
    # The durable function caught the failure of ``price`` and went on: on a resumed
    # rollback its replay meets ``price`` compensated before ``charge`` and ``pack``, and
    # must go past it to learn their compensations.
    outcome = crash_through(scenario, "caught", points)
    log = read_log(scenario.log)
    check_rolled_back(outcome, log, CAUGHT_ROLLBACK, failed=(CAUGHT, FAILING))
