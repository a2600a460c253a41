"""The cron scheduler: each firing of a schedule starts one workflow run, exactly once.

Where schedules come from: see :mod:`runtime.scheduling.entries` (jobs, and workflows
declared with schedules, become :class:`~runtime.scheduling.entries.ScheduleEntry` objects).

How a schedule behaves (DESIGN 2.5):

- **Reconciliation.** At start-up :meth:`Scheduler.reconcile` hands every
  declared schedule to the store, planned from now: a new schedule starts from
  its next firing, a changed expression or timezone is re-planned from now, an
  unchanged one keeps its stored plan and counts, and a schedule that neither
  this process nor another live worker declares is deactivated and never fires
  again. Each worker's declarations are stored with its worker id, so a process
  that starts never turns off what another live process runs (DESIGN 5); a
  scheduler with no schedules of its own (an embedded runtime, a web app)
  reconciles nothing.
- **Timing.** The loop sleeps, through the injected clock, until the earliest
  planned firing (never longer than :data:`MAX_SLEEP`, to notice plans moved
  by other processes), so a run is created within milliseconds of its nominal
  time. It does not poll. The next fire time is computed before the sleep, so
  no cron arithmetic sits between waking and firing.
- **Exactly once.** A firing is one store transaction that claims the unique
  key (schedule, nominal time), inserts the run (``pending``, for a worker to
  take) and moves the plan on. A second scheduler (another process, or this
  one after a restart) that reaches the same nominal time finds the key taken
  and starts nothing. The run's idempotency key is
  ``schedule:<name>:<nominal time, ISO>``.
- **Catch-up after downtime.** Of the firings that fell due while nothing was
  running, only the latest runs, and only if it is at most ``catchup_window``
  seconds late (a firing less than :data:`LATE_GRACE` late always runs); the
  others, and the latest one too when it is older than the window, are
  recorded ``missed`` (at most :data:`MAX_MISSED` of them, the latest).
- **Overlap.** With ``overlap="skip"`` (the default) a firing while the
  schedule's previous run is still active (not in a terminal status) is
  recorded ``skipped_overlap`` and starts nothing; ``"allow"`` starts it anyway.
- **number_of_executions** is counted in the store, so it survives restarts;
  a schedule that ran out has no next fire time.
- **Daylight saving** follows :mod:`runtime.cron`: a fixed-hour expression
  fires once at a wall time that the clock skips (right after the jump) or
  repeats (at its first occurrence); a wildcard-hour expression follows
  elapsed time.
- **Input.** A workflow schedule's ``input`` (a value, or a function called at
  each firing) becomes the run's input; a job's run gets ``None``. An input
  that fails (raises, or is not JSON) is logged and the firing recorded
  ``missed``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import anyio
import anyio.to_thread
import structlog
from anyio.abc import TaskStatus

from runtime.clock import Clock
from runtime.codec import dumps
from runtime.cron import CronSchedule
from runtime.errors import DefinitionError, StoreError
from runtime.ids import new_id
from runtime.models import FiringOutcome, FiringRecord, RunStatus, ScheduleRecord
from runtime.scheduling.entries import ScheduleEntry
from runtime.store.records import NewRun, ScheduleSpec
from runtime.telemetry import Telemetry
from runtime.usercode import is_failure

logger = structlog.get_logger("runtime.scheduler")

MAX_SLEEP = 60.0
"""Seconds the loop sleeps at most, so plans moved by other processes are noticed."""

LATE_GRACE = 1.0
"""Seconds late a firing may be and still run, whatever its ``catchup_window``."""

MAX_MISSED = 1000
"""Missed firings recorded at most per catch-up (the latest ones)."""

ERROR_BACKOFF = 1.0
"""Seconds to wait before trying again after the store failed."""

RECENT_LAGS = 1000
"""How many recent firing lags :meth:`Scheduler.statistics` keeps."""


class ScheduleStore(Protocol):
    """The part of :class:`~runtime.store.base.Store` the scheduler uses."""

    async def sync_schedules(
        self,
        specs: Sequence[ScheduleSpec],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> list[ScheduleRecord]: ...

    async def list_schedules(self) -> list[ScheduleRecord]: ...

    async def fire(
        self,
        schedule: str,
        nominal_at: datetime,
        run: NewRun | None,
        next_fire_at: datetime | None,
        missed: Sequence[datetime],
        now: datetime,
    ) -> FiringRecord | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """What a scheduler did since it was created.

    Attributes:
        schedules: how many schedules it runs.
        started: firings that started a run.
        skipped_overlap: firings skipped because the previous run was active.
        missed: firings recorded missed (downtime beyond the catch-up window).
        fired_elsewhere: due firings another scheduler had already handled.
        next_fire_at: the earliest planned firing, as last read.
        recent_lags: seconds from nominal time to the committed run, for the
            latest started firings (at most :data:`RECENT_LAGS`), oldest first.
    """

    schedules: int
    started: int
    skipped_overlap: int
    missed: int
    fired_elsewhere: int
    next_fire_at: datetime | None
    recent_lags: tuple[float, ...]

    def lag_ms(self, quantile: float) -> float | None:
        """The ``quantile`` (0 to 1) of the recent lags, in milliseconds; ``None`` if none."""
        if not self.recent_lags:
            return None
        ordered = sorted(self.recent_lags)
        index = min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))
        return ordered[index] * 1000.0


def _do_nothing() -> None:
    return None


class Scheduler:
    """Fires schedules: one run per (schedule, nominal time), however many run.

    Start it in a task group with ``await tg.start(scheduler.run)``: it
    reconciles the stored schedules with the declared ones before it reports
    started, then fires schedules as they fall due until cancelled.

    Args:
        store: where schedules, firings and runs live.
        clock: time source; the loop sleeps through it.
        schedules: what to run (see :func:`schedules_for`).
        on_started: called (synchronously) after a firing created a run, so a
            worker can pick the run up at once.
        worker_id: this process's worker id, under which its schedules are declared;
            ``None`` declares nothing (a test's bare scheduler).
        worker_ttl: seconds without a heartbeat after which another worker's
            declarations no longer keep its schedules active.
        telemetry: where each firing's outcome and lag are counted (``GET /metrics``);
            a fresh one, read by nobody, if omitted.

    Raises:
        DefinitionError: two schedules with one name.
    """

    def __init__(
        self,
        store: ScheduleStore,
        clock: Clock,
        schedules: Iterable[ScheduleEntry],
        on_started: Callable[[], None] = _do_nothing,
        *,
        worker_id: str | None = None,
        worker_ttl: float = 30.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._store = store
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._worker_id = worker_id
        self._worker_ttl = worker_ttl
        self._clock = clock
        self._on_started = on_started
        self._entries: dict[str, ScheduleEntry] = {}
        for entry in schedules:
            first = self._entries.get(entry.name)
            if first is not None:
                raise DefinitionError(
                    f"two schedules are named {entry.name!r}: {first.origin} and {entry.origin}"
                )
            self._entries[entry.name] = entry
        # Per schedule: (a firing, the one after it), so firing on time needs no cron math.
        self._following: dict[str, tuple[datetime, datetime]] = {}
        self._started = 0
        self._skipped = 0
        self._missed = 0
        self._elsewhere = 0
        self._next_fire_at: datetime | None = None
        self._lags: deque[float] = deque(maxlen=RECENT_LAGS)
        self._draining = False
        self._loop: anyio.CancelScope | None = None

    @property
    def schedules(self) -> tuple[ScheduleEntry, ...]:
        """The schedules this scheduler runs."""
        return tuple(self._entries.values())

    async def reconcile(self) -> list[ScheduleRecord]:
        """Make the stored schedules match the declared ones.

        New schedules are planned from now, changed expressions re-planned from
        now, unchanged ones keep their plan and counts, and those no live worker
        declares any more are deactivated. With no schedules of its own the
        scheduler touches nothing: an embedded runtime or a web app must not
        turn off the service's jobs, whether the service is running or not (a
        stopped service catches its downtime up when it starts again).

        Returns:
            The active schedules as stored (nothing when it has no schedules).
        """
        now = self._clock.now()
        entries = list(self._entries.values())
        if not entries:
            return []
        plans = await anyio.to_thread.run_sync(_plan_from, entries, now)
        specs = [
            ScheduleSpec(
                name=entry.name,
                workflow=entry.workflow,
                expression=entry.cron.expression,
                timezone=entry.cron.tz_name,
                max_executions=entry.max_executions,
                overlap=entry.overlap,
                catchup_window=entry.catchup_window,
                next_fire_at=planned,
            )
            for entry, planned in zip(entries, plans, strict=True)
        ]
        live_since = now - timedelta(seconds=self._worker_ttl)
        records = await self._store.sync_schedules(specs, now, self._worker_id, live_since)
        logger.info(
            "schedules_reconciled",
            schedules=[r.name for r in records],
            next_fire_at={r.name: _iso(r.next_fire_at) for r in records},
        )
        return records

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Reconcile, report started, then fire schedules as they fall due.

        Returns after :meth:`drain`; otherwise runs until cancelled.
        """
        await self.reconcile()
        task_status.started()
        with anyio.CancelScope() as self._loop:
            if self._draining:
                return
            if not self._entries:
                await anyio.sleep_forever()
            while True:
                try:
                    next_at = await self.fire_due()
                except StoreError:
                    logger.exception("scheduler_store_failed", retry_in=ERROR_BACKOFF)
                    await self._clock.sleep(ERROR_BACKOFF)
                    continue
                delay = MAX_SLEEP
                if next_at is not None:
                    delay = min(MAX_SLEEP, (next_at - self._clock.now()).total_seconds())
                await self._clock.sleep(max(delay, 0.0))

    def drain(self) -> None:
        """Fire nothing more (graceful shutdown); :meth:`run` returns. Non-blocking.

        A firing whose store write is under way completes: the write is one
        transaction, so a firing is either wholly recorded or not at all.
        """
        self._draining = True
        if self._loop is not None:
            self._loop.cancel()
        logger.debug("scheduler_stopped", started=self._started)

    async def fire_due(self) -> datetime | None:
        """Fire every schedule that is due now; return when the next one is due.

        Returns:
            The earliest planned firing still ahead (``None`` when no schedule
            will fire again).
        """
        handled: set[tuple[str, datetime]] = set()
        while True:
            records = [
                r
                for r in await self._store.list_schedules()
                if r.active and r.name in self._entries and r.next_fire_at is not None
            ]
            now = self._clock.now()
            due = [
                (r.next_fire_at, r.name)
                for r in records
                if r.next_fire_at is not None
                and r.next_fire_at <= now
                and (r.name, r.next_fire_at) not in handled
            ]
            if not due:
                break
            for planned, name in sorted(due):
                # A plan the store did not move on (it should always move) is not
                # fired twice in one pass, so the loop cannot spin.
                handled.add((name, planned))
                await self._fire(self._entries[name], planned, now)
        ahead = [
            (r.name, r.next_fire_at)
            for r in records
            if r.next_fire_at is not None and (r.name, r.next_fire_at) not in handled
        ]
        # Work out each next firing's successor now, while nothing is due.
        for name, planned in ahead:
            await self._successor(self._entries[name], planned)
        self._next_fire_at = min((planned for _, planned in ahead), default=None)
        return self._next_fire_at

    def statistics(self) -> SchedulerStatistics:
        """Counts of what this scheduler did, and its recent firing lags."""
        return SchedulerStatistics(
            schedules=len(self._entries),
            started=self._started,
            skipped_overlap=self._skipped,
            missed=self._missed,
            fired_elsewhere=self._elsewhere,
            next_fire_at=self._next_fire_at,
            recent_lags=tuple(self._lags),
        )

    async def _successor(self, entry: ScheduleEntry, firing: datetime) -> datetime:
        """The firing after ``firing`` (cached: one schedule, one pending plan)."""
        cached = self._following.get(entry.name)
        if cached is not None and cached[0] == firing:
            return cached[1]
        following = await anyio.to_thread.run_sync(entry.cron.next_after, firing)
        self._following[entry.name] = (firing, following)
        return following

    async def _fire(self, entry: ScheduleEntry, planned: datetime, now: datetime) -> None:
        """Fire ``entry`` whose stored plan ``planned`` is due at ``now``."""
        following = await self._successor(entry, planned)
        nominal, missed = planned, list[datetime]()
        if following <= now:  # downtime: more than one firing fell due
            nominal, missed, following = await anyio.to_thread.run_sync(
                _catch_up, entry.cron, planned, following, now
            )
            self._following[entry.name] = (nominal, following)
        late = (now - nominal).total_seconds()
        run: NewRun | None = None
        if late <= max(entry.catchup_window, LATE_GRACE):
            run = self._new_run(entry, nominal, now)
        fired_at = self._clock.now()
        firing = await self._store.fire(entry.name, nominal, run, following, missed, fired_at)
        self._record(entry, nominal, missed, firing, late)

    def _new_run(self, entry: ScheduleEntry, nominal: datetime, now: datetime) -> NewRun | None:
        """The run a firing starts; ``None`` (the firing is missed) when its input fails."""
        try:
            text = dumps(entry.input(nominal), f"the input of schedule {entry.name!r}")
        except BaseException as exc:  # the user's input function: a sys.exit() in it included
            if not is_failure(exc):
                raise
            logger.exception("schedule_input_failed", schedule=entry.name, nominal_at=_iso(nominal))
            return None
        return NewRun(
            id=new_id("run"),
            workflow=entry.workflow,
            version=entry.version,
            kind=entry.kind,
            idempotency_key=f"schedule:{entry.name}:{nominal.isoformat()}",
            status=RunStatus.PENDING,
            input=text,
            owner_id=None,
            parent_run_id=None,
            available_at=now,
            created_at=now,
        )

    def _record(
        self,
        entry: ScheduleEntry,
        nominal: datetime,
        missed: list[datetime],
        firing: FiringRecord | None,
        late: float,
    ) -> None:
        """Count and log one firing's outcome."""
        if firing is None:
            self._elsewhere += 1
            logger.debug("schedule_fired_elsewhere", schedule=entry.name, nominal_at=_iso(nominal))
            return
        if missed:
            self._missed += len(missed)
            missed_outcome = FiringOutcome.MISSED.value
            self._telemetry.schedule_fired(entry.name, missed_outcome, count=len(missed))
            logger.warning(
                "schedule_missed",
                schedule=entry.name,
                count=len(missed),
                first_at=_iso(missed[0]),
                last_at=_iso(missed[-1]),
            )
        lag: float | None = None
        if firing.outcome is FiringOutcome.STARTED:
            self._started += 1
            lag = (self._clock.now() - nominal).total_seconds()
            self._lags.append(lag)
        elif firing.outcome is FiringOutcome.SKIPPED_OVERLAP:
            self._skipped += 1
        else:
            self._missed += 1
        self._telemetry.schedule_fired(entry.name, firing.outcome.value, lag)
        lag_ms = None if lag is None else round(lag * 1000.0, 3)
        logger.info(
            "schedule_fired",
            schedule=entry.name,
            workflow=entry.workflow,
            nominal_at=_iso(nominal),
            outcome=firing.outcome.value,
            run_id=firing.run_id,
            late_s=round(late, 3),
            lag_ms=lag_ms,
        )
        if firing.outcome is FiringOutcome.STARTED:
            self._on_started()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _plan_from(entries: Sequence[ScheduleEntry], now: datetime) -> list[datetime]:
    """Each schedule's first firing after ``now`` (on a worker thread: cron math)."""
    return [entry.cron.next_after(now) for entry in entries]


def _catch_up(
    cron: CronSchedule, planned: datetime, following: datetime, now: datetime
) -> tuple[datetime, list[datetime], datetime]:
    """After downtime: the latest firing due at ``now``, the missed ones before it, the next.

    ``planned`` and ``following`` are consecutive firings, both at or before
    ``now``. The latest due firing is found by galloping back from ``now``, so
    a long downtime costs a few cron steps, not one per missed firing; the
    missed list holds at most :data:`MAX_MISSED` firings, the latest.
    """
    latest = _latest_at_or_before(cron, following, now)
    after = cron.next_after(latest)
    horizon = latest - (after - latest) * (MAX_MISSED + 1)
    moment = planned if planned >= horizon else cron.next_after(horizon)
    missed: deque[datetime] = deque(maxlen=MAX_MISSED)
    for _ in range(2 * MAX_MISSED):
        if moment >= latest:
            break
        missed.append(moment)
        moment = cron.next_after(moment)
    return latest, list(missed), after


def _latest_at_or_before(cron: CronSchedule, known: datetime, now: datetime) -> datetime:
    """The latest firing at or before ``now``, given ``known``, a firing at or before it."""
    span = timedelta(seconds=1)
    while True:
        low = now - span
        if low <= known:
            candidate = known
            break
        candidate = cron.next_after(low)
        if candidate <= now:
            break
        span *= 2
    while True:
        following = cron.next_after(candidate)
        if following > now:
            return candidate
        candidate = following
