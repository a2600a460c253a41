"""In-process counts of what this runtime did: steps ended and schedule firings.

The engine and the scheduler record here as they go; ``GET /metrics``
(:mod:`runtime.web.metrics`) reads a :meth:`Telemetry.snapshot` at each scrape
and writes it in the Prometheus text format. Recording is plain arithmetic on
dicts and lists owned by the event loop's thread: no I/O, no lock, no
third-party call: counting a step took 0.3 µs on the development machine
(``timeit``), against about 180 µs a step costs in ``runtime bench``. What the
store knows (runs by status, deliveries, workers) is not counted here but read
at scrape time.

One object per :class:`runtime.Runtime` (``rt.telemetry``), never a module-level
registry: many runtimes in one process (tests, an app embedding two) keep
their counts apart.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping
from typing import Final

STEP_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
"""Upper bounds (seconds) of the step-duration histogram's buckets: from a step that
only computes to one that waits on a slow API through its retries."""

LAG_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the schedule-lag histogram's buckets (firing on time is
milliseconds late; a catch-up after downtime is up to the schedule's window)."""


@dataclasses.dataclass(slots=True)
class Histogram:
    """Observations in buckets, as Prometheus keeps them.

    Attributes:
        bounds: the buckets' upper bounds, ascending (``+Inf`` is implied).
        counts: observations per bucket, not cumulative; the last is the ``+Inf`` one.
        total: the sum of every observation.
    """

    bounds: tuple[float, ...]
    counts: list[int]
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        """A histogram with no observations over ``bounds``."""
        return cls(bounds, [0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is at least ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or below it)``, ending with ``(inf, count)``."""
        running, out = 0, []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        """A copy that later observations do not change."""
        return Histogram(self.bounds, list(self.counts), self.total)


@dataclasses.dataclass(slots=True)
class StepCounts:
    """Steps of one workflow that ended in this process.

    Attributes:
        completed: steps that completed (a skipped step is not counted).
        failed: steps that failed for good (after their retries).
        duration: seconds from each such step's start to its end, retries included.
    """

    completed: int = 0
    failed: int = 0
    duration: Histogram = dataclasses.field(default_factory=lambda: Histogram.empty(STEP_BUCKETS))


@dataclasses.dataclass(slots=True)
class ScheduleCounts:
    """One schedule's firings by this process.

    Attributes:
        outcomes: firings by outcome (``started``, ``skipped_overlap``, ``missed``).
        lag: for the firings that started a run, seconds from the nominal time to the
            committed run.
        last_lag: the latest of those, or ``None`` before the first.
    """

    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    lag: Histogram = dataclasses.field(default_factory=lambda: Histogram.empty(LAG_BUCKETS))
    last_lag: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TelemetrySnapshot:
    """What a :class:`Telemetry` had counted when the snapshot was taken (copies)."""

    steps: Mapping[str, StepCounts]
    schedules: Mapping[str, ScheduleCounts]


class Telemetry:
    """Counts of steps ended and schedule firings, kept in memory by one runtime.

    Call its methods from the event loop's thread only (the engine and scheduler
    do): they take no lock.
    """

    __slots__ = ("_schedules", "_steps")

    def __init__(self) -> None:
        self._steps: dict[str, StepCounts] = {}
        self._schedules: dict[str, ScheduleCounts] = {}

    def step_completed(self, workflow: str, seconds: float) -> None:
        """A step of ``workflow`` completed, ``seconds`` after it started."""
        counts = self._steps.get(workflow)
        if counts is None:
            counts = self._steps[workflow] = StepCounts()
        counts.completed += 1
        counts.duration.observe(seconds)

    def step_failed(self, workflow: str, seconds: float) -> None:
        """A step of ``workflow`` failed for good, ``seconds`` after it started."""
        counts = self._steps.get(workflow)
        if counts is None:
            counts = self._steps[workflow] = StepCounts()
        counts.failed += 1
        counts.duration.observe(seconds)

    def schedule_fired(
        self, schedule: str, outcome: str, lag: float | None = None, *, count: int = 1
    ) -> None:
        """``count`` firings of ``schedule`` were recorded ``outcome``; a firing that
        started a run gives its ``lag``, seconds from its nominal time to the run."""
        counts = self._schedules.get(schedule)
        if counts is None:
            counts = self._schedules[schedule] = ScheduleCounts()
        counts.outcomes[outcome] = counts.outcomes.get(outcome, 0) + count
        if lag is not None:
            counts.lag.observe(lag)
            counts.last_lag = lag

    def snapshot(self) -> TelemetrySnapshot:
        """A copy of everything counted so far."""
        steps = {
            name: StepCounts(c.completed, c.failed, c.duration.copy())
            for name, c in self._steps.items()
        }
        schedules = {
            name: ScheduleCounts(dict(c.outcomes), c.lag.copy(), c.last_lag)
            for name, c in self._schedules.items()
        }
        return TelemetrySnapshot(steps, schedules)
