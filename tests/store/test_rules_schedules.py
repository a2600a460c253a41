"""A schedule's firing as a table: start, skip for overlap, stop at its count, miss; no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtime.models import FiringOutcome, Overlap, RunStatus
from runtime.store.rules.schedules import (
    Firing,
    ScheduleSnapshot,
    StoredPlan,
    Verdict,
    decide_firing,
    replans,
)

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""The firing's nominal time."""
EARLIER = (AT - timedelta(hours=2), AT - timedelta(hours=1))

IGNORE = Firing(Verdict.IGNORE)
EXHAUSTED = Firing(Verdict.EXHAUSTED)
STARTED = Firing(Verdict.FIRE, FiringOutcome.STARTED)
STARTED_LAST = Firing(Verdict.FIRE, FiringOutcome.STARTED, last=True)
SKIPPED = Firing(Verdict.FIRE, FiringOutcome.SKIPPED_OVERLAP)
MISSED = Firing(Verdict.FIRE, FiringOutcome.MISSED)


def schedule(
    *,
    active: bool = True,
    next_fire_at: datetime | None = AT,
    executions: int = 0,
    max_executions: int | None = None,
    overlap: Overlap = Overlap.SKIP,
    last_run_status: RunStatus | None = None,
) -> ScheduleSnapshot:
    """An active schedule due at ``AT`` that never ran, unless told."""
    return ScheduleSnapshot(
        active, next_fire_at, executions, max_executions, overlap, last_run_status
    )


ACTIVE = [s for s in RunStatus if not s.terminal]
ENDED = [s for s in RunStatus if s.terminal]

CASES: list[tuple[str, ScheduleSnapshot | None, bool, Firing]] = [
    ("a first firing", schedule(), True, STARTED),
    # Gone, inactive, or planned past this time (another process fired it): nothing.
    ("no such schedule", None, True, IGNORE),
    ("inactive", schedule(active=False), True, IGNORE),
    ("no plan", schedule(next_fire_at=None), True, IGNORE),
    ("planned later", schedule(next_fire_at=AT + timedelta(microseconds=1)), True, IGNORE),
    ("planned earlier", schedule(next_fire_at=AT - timedelta(hours=1)), True, STARTED),
    # Execution counts: the last allowed run clears the plan; past it, nothing starts.
    ("no limit", schedule(executions=1000), True, STARTED),
    ("below the limit", schedule(executions=1, max_executions=3), True, STARTED),
    ("the last allowed", schedule(executions=2, max_executions=3), True, STARTED_LAST),
    ("only one allowed", schedule(max_executions=1), True, STARTED_LAST),
    ("at the limit", schedule(executions=3, max_executions=3), True, EXHAUSTED),
    ("past the limit", schedule(executions=4, max_executions=3), True, EXHAUSTED),
    ("at the limit, missed", schedule(executions=3, max_executions=3), False, EXHAUSTED),
    ("limit zero", schedule(max_executions=0), True, EXHAUSTED),
    # Missed: every due time was older than the catch-up window.
    ("missed", schedule(), False, MISSED),
    ("missed while one runs", schedule(last_run_status=RunStatus.RUNNING), False, MISSED),
    ("missed, the last allowed", schedule(max_executions=1), False, MISSED),
    # Overlap: skip while the previous firing's run is active; allow starts anyway.
    *[(f"skip, previous {s}", schedule(last_run_status=s), True, SKIPPED) for s in ACTIVE],
    *[(f"skip, previous {s}", schedule(last_run_status=s), True, STARTED) for s in ENDED],
    ("skip, previous pruned", schedule(last_run_status=None), True, STARTED),
    *[
        (f"allow, previous {s}", schedule(overlap=Overlap.ALLOW, last_run_status=s), True, STARTED)
        for s in RunStatus
    ],
    (
        "allow, the last allowed while one runs",
        schedule(
            overlap=Overlap.ALLOW,
            last_run_status=RunStatus.RUNNING,
            executions=1,
            max_executions=2,
        ),
        True,
        STARTED_LAST,
    ),
    (
        "skip does not count toward the limit",
        schedule(last_run_status=RunStatus.RUNNING, executions=1, max_executions=2),
        True,
        SKIPPED,
    ),
]


@pytest.mark.parametrize(
    ("schedule_", "starts_run", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_firing(schedule_: ScheduleSnapshot | None, starts_run: bool, expected: Firing) -> None:
    assert decide_firing(schedule_, AT, starts_run, ()) == expected


@pytest.mark.parametrize(
    ("starts_run", "last_run_status", "outcome"),
    [
        (True, None, FiringOutcome.STARTED),
        (True, RunStatus.RUNNING, FiringOutcome.SKIPPED_OVERLAP),
        (False, None, FiringOutcome.MISSED),
    ],
)
def test_the_times_passed_over_are_recorded_missed_with_any_firing(
    starts_run: bool, last_run_status: RunStatus | None, outcome: FiringOutcome
) -> None:
    passed_over = [*EARLIER, AT, AT + timedelta(hours=1)]  # only those before AT count
    firing = decide_firing(schedule(last_run_status=last_run_status), AT, starts_run, passed_over)
    assert firing == Firing(Verdict.FIRE, outcome, EARLIER)


@pytest.mark.parametrize(
    "snapshot",
    [None, schedule(active=False), schedule(next_fire_at=None), schedule(max_executions=0)],
)
def test_no_miss_is_recorded_without_a_firing(snapshot: ScheduleSnapshot | None) -> None:
    assert decide_firing(snapshot, AT, True, EARLIER).missed == ()


STORED = StoredPlan("0 3 * * *", "UTC", active=True, planned=True, executions=2)


@pytest.mark.parametrize(
    ("stored", "expression", "timezone", "max_executions", "expected"),
    [
        # Declared as it is stored: the plan stands (downtime is caught up).
        (STORED, "0 3 * * *", "UTC", None, False),
        (STORED, "0 3 * * *", "UTC", 1, False),
        # A changed expression or timezone plans afresh.
        (STORED, "0 4 * * *", "UTC", None, True),
        (STORED, "0 3 * * *", "Europe/Paris", None, True),
        # Declared again after it was removed (inactive).
        (StoredPlan("0 3 * * *", "UTC", False, True, 2), "0 3 * * *", "UTC", None, True),
        # Ran out of executions (no plan): planned again only if it may run more now.
        (StoredPlan("0 3 * * *", "UTC", True, False, 2), "0 3 * * *", "UTC", 2, False),
        (StoredPlan("0 3 * * *", "UTC", True, False, 2), "0 3 * * *", "UTC", 1, False),
        (StoredPlan("0 3 * * *", "UTC", True, False, 2), "0 3 * * *", "UTC", 3, True),
        (StoredPlan("0 3 * * *", "UTC", True, False, 2), "0 3 * * *", "UTC", None, True),
    ],
)
def test_a_schedule_declared_again_is_planned_afresh_when(
    stored: StoredPlan,
    expression: str,
    timezone: str,
    max_executions: int | None,
    expected: bool,
) -> None:
    assert replans(stored, expression, timezone, max_executions) is expected
