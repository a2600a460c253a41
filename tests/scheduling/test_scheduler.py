"""The scheduler on a real SQLite file and a manual clock: firing, exactly once, catch-up,
overlap, execution limits, reconciliation and daylight saving."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest

from runtime.clock import to_text
from runtime.errors import DefinitionError
from runtime.models import FiringOutcome, RunStatus
from runtime.scheduling.entries import schedules_for
from runtime.scheduling.scheduler import MAX_MISSED, MAX_SLEEP, Scheduler
from runtime.sdk.composition import create_workflow
from runtime.sdk.specs import Schedule
from runtime.sdk.steps import create_step
from runtime.store import open_store
from runtime.store.base import Store
from runtime.testing import ManualClock
from tests.helpers.backends import sqlite_only
from tests.scheduling.conftest import (
    Counter,
    at,
    entries,
    job,
    move_to,
    running,
    step_through,
)

NEW_YORK = ZoneInfo("America/New_York")


def _workflow(name: str, schedule: Schedule | str):
    step = create_step("noop", lambda: None)
    return create_workflow(name, lambda: step(), schedule=schedule)


async def started(store: Store, schedule: str) -> list[tuple[datetime, str | None]]:
    """(nominal time, run id) of a schedule's started firings, oldest first."""
    firings = await store.list_firings(schedule, limit=10_000)
    return [(f.nominal_at, f.run_id) for f in reversed(firings) if f.outcome == "started"]


async def outcomes(store: Store, schedule: str) -> list[tuple[datetime, FiringOutcome]]:
    firings = await store.list_firings(schedule, limit=10_000)
    return [(f.nominal_at, f.outcome) for f in reversed(firings)]


async def schedule_row(store: Store, name: str):
    return {s.name: s for s in await store.list_schedules()}[name]


# -- firing -----------------------------------------------------------------


async def test_jobs_and_workflow_schedules_fire_at_their_nominal_times(
    store: Store, clock: ManualClock
) -> None:
    counter = {"n": 0}

    def next_input() -> dict[str, int]:
        counter["n"] += 1
        return {"n": counter["n"]}

    # overlap="allow": nothing runs the runs here, so they stay pending.
    report = _workflow(
        "report", Schedule(cron="*/2 * * * *", name="every-2", input=next_input, overlap="allow")
    )
    plans = schedules_for([job("cleanup", "* * * * *", overlap="allow")], [report], "UTC")
    assert [(p.name, p.workflow) for p in plans] == [
        ("cleanup", "job-cleanup"),
        ("report:every-2", "report"),
    ]
    on_started = Counter()
    scheduler = Scheduler(store, clock, plans, on_started)
    async with running(scheduler, clock=clock):
        # Asleep until the first nominal time, not polling.
        assert clock.next_deadline == at(12, 1)
        for minute in (1, 2, 3, 4):
            await move_to(clock, at(12, minute))

    jobs = await started(store, "cleanup")
    assert [nominal for nominal, _ in jobs] == [at(12, m) for m in (1, 2, 3, 4)]
    for nominal, run_id in jobs:
        assert run_id is not None
        run = await store.get_run(run_id)
        assert run.workflow == "job-cleanup"
        assert run.status is RunStatus.PENDING
        assert run.owner_id is None
        assert run.input is None
        assert run.idempotency_key == f"schedule:cleanup:{nominal.isoformat()}"
        assert run.available_at == nominal
    reports = await started(store, "report:every-2")
    assert [nominal for nominal, _ in reports] == [at(12, 2), at(12, 4)]
    inputs = [(await store.get_run(run_id)).input for _, run_id in reports if run_id]
    assert inputs == [{"n": 1}, {"n": 2}]  # the input function is called at each firing

    stats = scheduler.statistics()
    assert (stats.started, stats.skipped_overlap, stats.missed) == (6, 0, 0)
    assert on_started.calls == 6
    assert stats.recent_lags == (0.0,) * 6  # virtual time: created at the nominal instant
    assert stats.lag_ms(0.99) == 0.0
    assert stats.next_fire_at == at(12, 5)


async def test_the_loop_sleeps_until_the_next_firing_at_most_max_sleep(
    store: Store, clock: ManualClock
) -> None:
    scheduler = Scheduler(store, clock, entries(job("hourly", "0 * * * *")))
    async with running(scheduler, clock=clock):
        assert clock.next_deadline == clock.now() + timedelta(seconds=MAX_SLEEP)
        await move_to(clock, at(12, 59, 30))
        assert clock.next_deadline == at(13, 0)
        await move_to(clock, at(13, 0))
    assert [n for n, _ in await started(store, "hourly")] == [at(13, 0)]


async def test_two_schedulers_on_one_file_start_one_run_per_nominal_time(
    db_url: str, clock: ManualClock
) -> None:
    plans = entries(
        job("tick", "* * * * *", overlap="allow"), job("other", "*/2 * * * *", overlap="allow")
    )
    first, second = await open_store(db_url), await open_store(db_url)
    try:
        a, b = Scheduler(first, clock, plans), Scheduler(second, clock, plans)
        async with running(a, b, clock=clock):
            await step_through(clock, at(12, 10), timedelta(minutes=1), sleepers=2)
        ticks = await started(first, "tick")
        assert [n for n, _ in ticks] == [at(12, m) for m in range(1, 11)]
        assert [n for n, _ in await started(first, "other")] == [at(12, m) for m in range(2, 11, 2)]
        runs = await first.list_runs(workflow="job-tick", limit=100)
        assert sorted(r.id for r in runs.runs) == sorted(run_id for _, run_id in ticks if run_id)
        total = a.statistics().started + b.statistics().started
        assert total == 15
    finally:
        await first.close()
        await second.close()


@sqlite_only  # it writes the stale plan into the SQLite file itself
async def test_a_restart_does_not_fire_a_nominal_time_again(
    db_url: str, db_path: Path, clock: ManualClock
) -> None:
    plans = entries(job("tick", "* * * * *", overlap="allow"))
    store = await open_store(db_url)
    async with running(Scheduler(store, clock, plans), clock=clock):
        await move_to(clock, at(12, 1))
        await move_to(clock, at(12, 2))
    await store.close()
    # A plan left behind by a crash between two processes: the stored next fire time
    # points at a nominal time that was already fired. The firing key still holds.
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE schedules SET next_fire_at = ?", (to_text(at(12, 2)),))
    store = await open_store(db_url)
    try:
        scheduler = Scheduler(store, clock, plans)
        async with running(scheduler, clock=clock):
            await move_to(clock, at(12, 3))
        assert [n for n, _ in await started(store, "tick")] == [at(12, m) for m in (1, 2, 3)]
        assert len((await store.list_runs(workflow="job-tick")).runs) == 3
        assert scheduler.statistics().fired_elsewhere == 1
    finally:
        await store.close()


# -- catch-up ---------------------------------------------------------------


async def test_after_downtime_only_the_latest_firing_within_the_window_runs(
    db_url: str, clock: ManualClock
) -> None:
    plans = entries(job("tick", "* * * * *", catchup_window=120))
    store = await open_store(db_url)
    await Scheduler(store, clock, plans).reconcile()  # planned 12:01, then the process stops
    await store.close()

    clock.set(at(12, 10, 30))
    store = await open_store(db_url)
    try:
        scheduler = Scheduler(store, clock, plans)
        async with running(scheduler, clock=clock):
            pass
        assert await outcomes(store, "tick") == [
            *[(at(12, m), FiringOutcome.MISSED) for m in range(1, 10)],
            (at(12, 10), FiringOutcome.STARTED),
        ]
        assert len((await store.list_runs(workflow="job-tick")).runs) == 1
        assert (await schedule_row(store, "tick")).next_fire_at == at(12, 11)
        stats = scheduler.statistics()
        assert (stats.started, stats.missed) == (1, 9)
    finally:
        await store.close()


async def test_after_downtime_nothing_runs_when_every_firing_is_older_than_the_window(
    store: Store, clock: ManualClock
) -> None:
    plans = entries(job("tick", "* * * * *", catchup_window=10))
    await Scheduler(store, clock, plans).reconcile()
    clock.set(at(12, 3, 30))
    scheduler = Scheduler(store, clock, plans)
    async with running(scheduler, clock=clock):
        assert await outcomes(store, "tick") == [
            (at(12, m), FiringOutcome.MISSED) for m in (1, 2, 3)
        ]
        assert (await store.list_runs(workflow="job-tick")).runs == []
        assert (await schedule_row(store, "tick")).next_fire_at == at(12, 4)
        # Back on time: the next firing runs.
        await move_to(clock, at(12, 4))
    assert [n for n, _ in await started(store, "tick")] == [at(12, 4)]
    assert scheduler.statistics().missed == 3


async def test_a_long_downtime_records_at_most_the_latest_missed_firings(
    store: Store, clock: ManualClock
) -> None:
    plans = entries(job("hourly", "0 * * * *"))
    await Scheduler(store, clock, plans).reconcile()  # planned 13:00
    clock.set(at(13, 0) + timedelta(days=60, minutes=5))
    await Scheduler(store, clock, plans).fire_due()
    found = await outcomes(store, "hourly")
    latest = at(13, 0) + timedelta(days=60)
    assert found[-1] == (latest, FiringOutcome.STARTED)
    missed = [n for n, outcome in found if outcome is FiringOutcome.MISSED]
    assert len(missed) == MAX_MISSED
    assert missed[-1] == latest - timedelta(hours=1)
    assert missed[0] == latest - timedelta(hours=MAX_MISSED)


# -- overlap ----------------------------------------------------------------


async def test_a_firing_while_the_previous_run_is_active_is_skipped(
    store: Store, clock: ManualClock
) -> None:
    scheduler = Scheduler(store, clock, entries(job("tick", "* * * * *")))
    async with running(scheduler, clock=clock):
        await move_to(clock, at(12, 1))
        [(_, first_run)] = await started(store, "tick")
        assert first_run is not None
        await move_to(clock, at(12, 2))  # the first run is still pending
        await store.transition(first_run, [RunStatus.PENDING], RunStatus.RUNNING, clock.now())
        await move_to(clock, at(12, 3))  # ... and still running
        await store.transition(first_run, [RunStatus.RUNNING], RunStatus.COMPLETED, clock.now())
        await move_to(clock, at(12, 4))
    assert await outcomes(store, "tick") == [
        (at(12, 1), FiringOutcome.STARTED),
        (at(12, 2), FiringOutcome.SKIPPED_OVERLAP),
        (at(12, 3), FiringOutcome.SKIPPED_OVERLAP),
        (at(12, 4), FiringOutcome.STARTED),
    ]
    assert scheduler.statistics().skipped_overlap == 2
    assert len((await store.list_runs(workflow="job-tick")).runs) == 2


async def test_overlap_allow_starts_a_run_at_every_firing(store: Store, clock: ManualClock) -> None:
    scheduler = Scheduler(store, clock, entries(job("tick", "* * * * *", overlap="allow")))
    async with running(scheduler, clock=clock):
        for minute in (1, 2, 3):
            await move_to(clock, at(12, minute))
    assert [o for _, o in await outcomes(store, "tick")] == [FiringOutcome.STARTED] * 3
    runs = (await store.list_runs(workflow="job-tick")).runs
    assert [r.status for r in runs] == [RunStatus.PENDING] * 3


# -- number_of_executions -----------------------------------------------------


async def test_number_of_executions_is_persisted_across_a_restart(
    db_url: str, clock: ManualClock
) -> None:
    plans = entries(job("twice", "* * * * *", number_of_executions=2, overlap="allow"))
    store = await open_store(db_url)
    async with running(Scheduler(store, clock, plans), clock=clock):
        await move_to(clock, at(12, 1))
    await store.close()

    store = await open_store(db_url)
    try:
        async with running(Scheduler(store, clock, plans), clock=clock):
            for minute in (2, 3, 4):
                await move_to(clock, at(12, minute))
        assert [n for n, _ in await started(store, "twice")] == [at(12, 1), at(12, 2)]
        row = await schedule_row(store, "twice")
        assert (row.executions, row.next_fire_at, row.active) == (2, None, True)
    finally:
        await store.close()
    # Still exhausted after another restart.
    store = await open_store(db_url)
    try:
        records = await Scheduler(store, clock, plans).reconcile()
        assert [(r.executions, r.next_fire_at) for r in records] == [(2, None)]
        # Raising the limit in code lets it run again, planned from now.
        more = entries(job("twice", "* * * * *", number_of_executions=3, overlap="allow"))
        records = await Scheduler(store, clock, more).reconcile()
        assert [(r.executions, r.next_fire_at) for r in records] == [(2, at(12, 5))]
    finally:
        await store.close()


# -- reconciliation -----------------------------------------------------------


async def test_reconciliation_keeps_replans_and_deactivates(
    store: Store, clock: ManualClock
) -> None:
    before = entries(
        job("keep", "*/10 * * * *", overlap="allow"),
        job("drop", "* * * * *", overlap="allow"),
        job("change", "0 * * * *", overlap="allow"),
    )
    first = Scheduler(store, clock, before)
    records = {r.name: r for r in await first.reconcile()}
    assert records["change"].next_fire_at == at(13, 0)
    clock.set(at(12, 10))
    await first.fire_due()  # keep and drop fire at 12:10

    clock.set(at(12, 25))  # the process was down from 12:10 to 12:25, code changed
    after = entries(
        job("keep", "*/10 * * * *", overlap="allow"), job("change", "*/10 * * * *", overlap="allow")
    )
    second = Scheduler(store, clock, after)
    records = {r.name: r for r in await second.reconcile()}
    assert set(records) == {"keep", "change"}
    # Unchanged: the stored plan (12:20, not 12:30 from now) and the count stand.
    assert (records["keep"].next_fire_at, records["keep"].executions) == (at(12, 20), 1)
    # Changed expression: re-planned from now.
    assert records["change"].next_fire_at == at(12, 30)
    dropped = await schedule_row(store, "drop")
    assert not dropped.active
    drop_firings = await outcomes(store, "drop")

    async with running(second, clock=clock):
        await move_to(clock, at(12, 30))
    assert [n for n, _ in await started(store, "keep")] == [at(12, 10), at(12, 20), at(12, 30)]
    assert [n for n, _ in await started(store, "change")] == [at(12, 30)]
    assert await outcomes(store, "drop") == drop_firings  # removed: never fired again
    # Declaring it again re-plans it from now rather than catching up.
    records = {r.name: r for r in await Scheduler(store, clock, before).reconcile()}
    assert records["drop"].active and records["drop"].next_fire_at == at(12, 31)


def test_two_schedules_with_one_name_are_refused_naming_both() -> None:
    clash = _workflow("nightly", Schedule(cron="0 3 * * *", name="default"))
    with pytest.raises(DefinitionError, match=r"two schedules are named 'a'.*job 'a'.*job 'a'"):
        schedules_for([job("a", "* * * * *"), job("a", "0 * * * *")], [], "UTC")
    with pytest.raises(DefinitionError, match=r"'nightly:default'.*job.*workflow 'nightly'"):
        schedules_for([job("nightly:default", "* * * * *")], [clash], "UTC")


def test_schedules_use_the_default_timezone_unless_they_name_one() -> None:
    plans = schedules_for(
        [job("local", "0 2 * * *"), job("paris", "0 2 * * *", timezone="Europe/Paris")],
        [_workflow("wf", "0 4 * * *")],
        "America/New_York",
    )
    assert [(p.name, p.cron.tz_name) for p in plans] == [
        ("local", "America/New_York"),
        ("paris", "Europe/Paris"),
        ("wf:default", "America/New_York"),
    ]


# -- daylight saving (America/New_York) ---------------------------------------


async def test_a_daily_time_skipped_by_the_spring_jump_fires_once_right_after_it(
    store: Store,
) -> None:
    clock = ManualClock(datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK))
    plans = entries(job("nightly", "30 2 * * *", timezone="America/New_York", overlap="allow"))
    async with running(Scheduler(store, clock, plans), clock=clock):
        await step_through(clock, datetime(2026, 3, 9, 12, tzinfo=NEW_YORK), timedelta(hours=1))
    fired = [n.astimezone(NEW_YORK) for n, _ in await started(store, "nightly")]
    assert [f.strftime("%Y-%m-%d %H:%M %Z") for f in fired] == [
        "2026-03-08 03:00 EDT",  # 02:30 did not exist: once, as the clock jumped
        "2026-03-09 02:30 EDT",
    ]


async def test_a_daily_time_repeated_by_the_autumn_fallback_fires_once(
    store: Store,
) -> None:
    clock = ManualClock(datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK))
    plans = entries(job("nightly", "30 1 * * *", timezone="America/New_York", overlap="allow"))
    async with running(Scheduler(store, clock, plans), clock=clock):
        await step_through(clock, datetime(2026, 11, 2, 12, tzinfo=NEW_YORK), timedelta(minutes=30))
    fired = [n.astimezone(NEW_YORK) for n, _ in await started(store, "nightly")]
    assert [f.strftime("%Y-%m-%d %H:%M %Z") for f in fired] == [
        "2026-11-01 01:30 EDT",  # the first 01:30 only
        "2026-11-02 01:30 EST",
    ]
    assert fired[0].astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


async def test_a_wildcard_hour_fires_in_both_repeated_hours_through_the_scheduler(
    store: Store,
) -> None:
    clock = ManualClock(datetime(2026, 11, 1, 4, 40, tzinfo=UTC))  # 00:40 EDT
    plans = entries(
        job("half-hourly", "*/30 * * * *", timezone="America/New_York", overlap="allow")
    )
    async with running(Scheduler(store, clock, plans), clock=clock):
        await step_through(clock, datetime(2026, 11, 1, 7, 0, tzinfo=UTC), timedelta(minutes=10))
    fired = [n.astimezone(NEW_YORK) for n, _ in await started(store, "half-hourly")]
    assert [f.strftime("%H:%M %Z") for f in fired] == [
        "01:00 EDT",
        "01:30 EDT",
        "01:00 EST",
        "01:30 EST",
        "02:00 EST",
    ]


# -- life cycle ----------------------------------------------------------------


async def test_drain_ends_the_loop_and_fires_nothing_more(store: Store, clock: ManualClock) -> None:
    scheduler = Scheduler(store, clock, entries(job("tick", "* * * * *")))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(scheduler.run)
            await clock.wait_sleepers(1)
            scheduler.drain()
        # run() returned by itself: the task group closed without a cancel.
    clock.set(at(12, 5))
    assert await outcomes(store, "tick") == []


def _exits() -> None:
    sys.exit(3)


def _interrupted() -> None:
    raise KeyboardInterrupt


def _runtime_error() -> None:
    raise RuntimeError("no input today")


@pytest.mark.parametrize("raiser", [_runtime_error, _exits, _interrupted])
async def test_a_failing_input_function_records_the_firing_missed(
    store: Store, clock: ManualClock, raiser: Callable[[], None]
) -> None:
    """Bug (for sys.exit() and KeyboardInterrupt): only ``Exception`` was caught around
    the user's input function, so one of those stopped the scheduler and the service."""
    calls = {"n": 0}

    def flaky() -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raiser()
        return {"ok": True}

    wf = _workflow("wf", Schedule(cron="* * * * *", input=flaky, overlap="allow"))
    plans = schedules_for([], [wf], "UTC")
    async with running(Scheduler(store, clock, plans), clock=clock):
        await move_to(clock, at(12, 1))
        await move_to(clock, at(12, 2))
    assert await outcomes(store, "wf:default") == [
        (at(12, 1), FiringOutcome.MISSED),
        (at(12, 2), FiringOutcome.STARTED),
    ]
