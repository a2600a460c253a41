"""A schedule's firing: start, skip for overlap, stop at its execution count, or record a miss.

:func:`decide_firing` is the rule. A backend reads a :class:`ScheduleSnapshot`, calls it,
claims the firing (its one row per schedule and nominal time, which makes a firing happen
once however many schedulers ask) and applies the :class:`Firing` with a compare-and-set
on the schedule's ``executions`` and ``next_fire_at``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from runtime.models import FiringOutcome, Overlap, RunStatus


@dataclass(frozen=True, slots=True)
class ScheduleSnapshot:
    """The columns of a schedule the firing rule reads.

    Attributes:
        active: whether a live process declares the schedule.
        next_fire_at: the planned next firing, ``None`` when there is none.
        executions: the runs it has started.
        max_executions: the runs it may start at most (``None``: no limit).
        overlap: what a firing does while the previous firing's run is active.
        last_run_status: the status of the previous firing's run, ``None`` if there is
            none (or it was pruned).
    """

    active: bool
    next_fire_at: datetime | None
    executions: int
    max_executions: int | None
    overlap: Overlap
    last_run_status: RunStatus | None


class Verdict(enum.Enum):
    """What a firing does before its claim."""

    IGNORE = "ignore"
    """Nothing: the schedule is gone or inactive, or its plan is already past this time."""
    EXHAUSTED = "exhausted"
    """Nothing but clear the plan: the schedule started all the runs it may start."""
    FIRE = "fire"
    """Claim the firing and record its :attr:`Firing.outcome`."""


@dataclass(frozen=True, slots=True)
class Firing:
    """The decision for one firing of one schedule.

    Attributes:
        verdict: what to do.
        outcome: the firing's outcome once claimed (with :attr:`Verdict.FIRE`).
        missed: the earlier due times to record ``missed`` with it.
        last: the run it starts is the schedule's last allowed one (its plan is cleared).
    """

    verdict: Verdict
    outcome: FiringOutcome | None = None
    missed: tuple[datetime, ...] = ()
    last: bool = False


def decide_firing(
    schedule: ScheduleSnapshot | None,
    nominal_at: datetime,
    starts_run: bool,
    missed: Sequence[datetime],
) -> Firing:
    """What the firing of ``schedule`` due at ``nominal_at`` does.

    Args:
        schedule: the schedule's snapshot, ``None`` if it does not exist.
        nominal_at: the firing's nominal time.
        starts_run: the scheduler asks for a run; ``False`` when every due time was
            older than the catch-up window, so ``nominal_at`` is recorded ``missed``.
        missed: the due times the scheduler passed over; those before ``nominal_at``
            are recorded ``missed``.
    """
    if schedule is None or not schedule.active:
        return Firing(Verdict.IGNORE)
    # A plan already past this nominal time means another process (or a re-plan) dealt
    # with it: never move the plan backwards.
    if schedule.next_fire_at is None or schedule.next_fire_at > nominal_at:
        return Firing(Verdict.IGNORE)
    limit = schedule.max_executions
    if limit is not None and schedule.executions >= limit:
        return Firing(Verdict.EXHAUSTED)
    earlier = tuple(m for m in missed if m < nominal_at)
    if not starts_run:
        return Firing(Verdict.FIRE, FiringOutcome.MISSED, earlier)
    last = schedule.last_run_status
    if schedule.overlap == Overlap.SKIP and last is not None and not last.terminal:
        return Firing(Verdict.FIRE, FiringOutcome.SKIPPED_OVERLAP, earlier)
    # The last allowed execution clears the plan, so listings show no next time.
    final = limit is not None and schedule.executions + 1 >= limit
    return Firing(Verdict.FIRE, FiringOutcome.STARTED, earlier, last=final)


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """The columns of a stored schedule that decide whether its declaration re-plans it.

    Attributes:
        expression: its cron expression as stored.
        timezone: its timezone as stored.
        active: whether a live process declared it.
        planned: whether it has a next firing planned.
        executions: the runs it has started.
    """

    expression: str
    timezone: str
    active: bool
    planned: bool
    executions: int


def replans(stored: StoredPlan, expression: str, timezone: str, max_executions: int | None) -> bool:
    """Whether a schedule declared again (with these) is planned afresh from now.

    Re-planned: a changed expression or timezone, a schedule declared again after it was
    removed, or one that ran out of executions and may now run more (a raised
    ``number_of_executions``). Otherwise the stored plan stands, so downtime is caught up
    by the scheduler.
    """
    if (stored.expression, stored.timezone) != (expression, timezone) or not stored.active:
        return True
    return not stored.planned and (max_executions is None or stored.executions < max_executions)
