"""The Store contract, schedules: reconciliation, and each nominal time fired once."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import anyio
import pytest

from runtime import RunNotFoundError, RunStatus
from runtime.models import FiringOutcome, FiringRecord, Overlap
from runtime.store.base import Store
from runtime.store.changes import Complete
from runtime.store.records import ScheduleSpec
from tests.helpers.records import T0, WORKFLOW, add_worker, new_run

HOUR = timedelta(hours=1)
LIVE = T0 - timedelta(seconds=30)
"""Workers with a heartbeat since then are live (``live_since``)."""


def spec(
    name: str = "hourly",
    *,
    expression: str = "0 * * * *",
    next_fire_at: datetime | None = T0,
    overlap: Overlap = Overlap.ALLOW,
    max_executions: int | None = None,
) -> ScheduleSpec:
    return ScheduleSpec(
        name, WORKFLOW, expression, "UTC", max_executions, overlap, 60.0, next_fire_at
    )


async def fire(
    store: Store, nominal: datetime, *, missed: tuple[datetime, ...] = (), name: str = "hourly"
) -> FiringRecord | None:
    """Fire ``name`` for ``nominal``, starting a run and planning the next hour."""
    return await store.fire(name, nominal, new_run(), nominal + HOUR, missed, nominal)


async def schedule(store: Store, name: str) -> dict[str, object]:
    (found,) = [s for s in await store.list_schedules() if s.name == name]
    return found.model_dump()


# -- sync_schedules ----------------------------------------------------------------------


async def test_a_new_schedule_is_stored_active_and_planned(store: Store) -> None:
    active = await store.sync_schedules([spec("b"), spec("a", next_fire_at=T0 + HOUR)], T0)

    assert [(s.name, s.next_fire_at, s.executions, s.active) for s in active] == [
        ("a", T0 + HOUR, 0, True),
        ("b", T0, 0, True),
    ]
    assert await store.list_schedules() == active
    assert (active[0].expression, active[0].timezone, active[0].overlap) == (
        "0 * * * *",
        "UTC",
        Overlap.ALLOW,
    )


async def test_the_plan_stands_unless_the_expression_changes(store: Store) -> None:
    await store.sync_schedules([spec()], T0)
    await fire(store, T0)

    # Declared again after a restart: the plan and the count survive (downtime is caught up).
    (kept,) = await store.sync_schedules([spec(next_fire_at=T0 + 5 * HOUR)], T0 + 5 * HOUR)
    assert (kept.next_fire_at, kept.executions) == (T0 + HOUR, 1)

    changed = spec(expression="30 * * * *", next_fire_at=T0 + 5.5 * HOUR)
    (replanned,) = await store.sync_schedules([changed], T0 + 5 * HOUR)
    assert (replanned.next_fire_at, replanned.executions) == (T0 + 5.5 * HOUR, 1)


async def test_a_schedule_no_live_worker_declares_is_deactivated(store: Store) -> None:
    await add_worker(store, "wrk_a", T0)
    await add_worker(store, "wrk_b", T0)
    await add_worker(store, "wrk_stale", T0 - HOUR)
    await store.sync_schedules([spec("shared"), spec("mine")], T0, "wrk_b", LIVE)
    await store.sync_schedules([spec("stale")], T0, "wrk_stale", LIVE)

    active = await store.sync_schedules([spec("new")], T0, "wrk_a", LIVE)

    # "shared" and "mine" stay: wrk_b is live and declares them; "stale" goes.
    assert [s.name for s in active] == ["mine", "new", "shared"]
    listed = {s.name: s.active for s in await store.list_schedules()}
    assert listed == {"mine": True, "new": True, "shared": True, "stale": False}
    # wrk_b leaves: its declarations lapse with it.
    await store.remove_workers(["wrk_b"], T0)
    active = await store.sync_schedules([spec("new")], T0, "wrk_a", LIVE)
    assert [s.name for s in active] == ["new"]


async def test_a_deactivated_schedule_does_not_fire_and_is_replanned_when_declared_again(
    store: Store,
) -> None:
    await store.sync_schedules([spec()], T0)
    await store.sync_schedules([], T0)

    assert await fire(store, T0) is None
    (back,) = await store.sync_schedules([spec(next_fire_at=T0 + 3 * HOUR)], T0 + 3 * HOUR)
    assert (back.active, back.next_fire_at) == (True, T0 + 3 * HOUR)


# -- fire ----------------------------------------------------------------------------------


async def test_fire_starts_the_run_and_moves_the_plan(store: Store) -> None:
    await store.sync_schedules([spec()], T0)
    run = new_run(available_at=T0)

    firing = await store.fire("hourly", T0, run, T0 + HOUR, [], T0)

    assert firing == FiringRecord(
        schedule="hourly",
        nominal_at=T0,
        outcome=FiringOutcome.STARTED,
        run_id=run.id,
        recorded_at=T0,
    )
    assert (await store.get_run(run.id)).status is RunStatus.PENDING
    stored = await schedule(store, "hourly")
    assert (stored["next_fire_at"], stored["executions"], stored["last_run_id"]) == (
        T0 + HOUR,
        1,
        run.id,
    )
    assert await store.list_firings("hourly") == [firing]


async def test_a_nominal_time_fires_once(store: Store) -> None:
    await store.sync_schedules([spec()], T0)
    assert await fire(store, T0) is not None

    again = new_run()
    assert await store.fire("hourly", T0, again, T0 + HOUR, [], T0) is None

    with pytest.raises(RunNotFoundError):
        await store.get_run(again.id)
    assert len(await store.list_firings("hourly")) == 1
    assert (await schedule(store, "hourly"))["executions"] == 1


async def test_two_schedulers_firing_at_once_start_one_run_per_nominal_time(
    store: Store, other: Store
) -> None:
    await store.sync_schedules([spec()], T0)
    fired: list[FiringRecord] = []

    async def scheduler(s: Store) -> None:
        for hour in range(6):
            if (firing := await fire(s, T0 + hour * HOUR)) is not None:
                fired.append(firing)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler, store)
            tg.start_soon(scheduler, other)

    assert sorted(f.nominal_at for f in fired) == [T0 + h * HOUR for h in range(6)]
    assert len({f.run_id for f in fired}) == 6
    assert (await schedule(store, "hourly"))["executions"] == 6
    started = await store.list_runs(workflow=WORKFLOW, limit=100)
    assert sorted(r.id for r in started.runs) == sorted(str(f.run_id) for f in fired)


async def test_a_plan_never_moves_back(store: Store) -> None:
    await store.sync_schedules([spec()], T0)
    await fire(store, T0 + 2 * HOUR)  # the plan is past 3h now

    assert await fire(store, T0 + HOUR) is None
    assert (await schedule(store, "hourly"))["next_fire_at"] == T0 + 3 * HOUR


async def test_missed_times_are_recorded_then_the_run_starts(store: Store) -> None:
    await store.sync_schedules([spec()], T0)
    nominal = T0 + 3 * HOUR

    firing = await fire(store, nominal, missed=(T0, T0 + HOUR, T0 + 2 * HOUR))

    assert firing is not None and firing.outcome is FiringOutcome.STARTED
    firings = await store.list_firings("hourly")
    assert [(f.nominal_at, f.outcome) for f in firings] == [
        (nominal, FiringOutcome.STARTED),
        (T0 + 2 * HOUR, FiringOutcome.MISSED),
        (T0 + HOUR, FiringOutcome.MISSED),
        (T0, FiringOutcome.MISSED),
    ]
    assert [f.nominal_at for f in await store.list_firings("hourly", limit=2)] == [
        nominal,
        T0 + 2 * HOUR,
    ]
    assert await store.list_firings("unknown") == []


async def test_fire_without_a_run_records_a_miss_and_moves_on(store: Store) -> None:
    await store.sync_schedules([spec()], T0)

    firing = await store.fire("hourly", T0, None, T0 + HOUR, [], T0 + 2 * HOUR)

    assert firing is not None
    assert (firing.outcome, firing.run_id) == (FiringOutcome.MISSED, None)
    stored = await schedule(store, "hourly")
    assert (stored["next_fire_at"], stored["executions"]) == (T0 + HOUR, 0)


async def test_overlap_skip_skips_while_the_last_run_is_active(store: Store) -> None:
    await store.sync_schedules([spec(overlap=Overlap.SKIP)], T0)
    first = await fire(store, T0)
    assert first is not None and first.run_id is not None

    skipped_run = new_run()
    skipped = await store.fire("hourly", T0 + HOUR, skipped_run, T0 + 2 * HOUR, [], T0 + HOUR)
    assert skipped is not None
    assert (skipped.outcome, skipped.run_id) == (FiringOutcome.SKIPPED_OVERLAP, None)
    with pytest.raises(RunNotFoundError):
        await store.get_run(skipped_run.id)

    await store.claim_run(first.run_id, "wrk_a", None, T0)
    done = Complete(output="null", ended_at=T0)
    await store.checkpoint(first.run_id, "wrk_a", [], done, T0)
    started = await fire(store, T0 + 2 * HOUR)
    assert started is not None and started.outcome is FiringOutcome.STARTED


async def test_overlap_allow_starts_a_run_every_time(store: Store) -> None:
    await store.sync_schedules([spec(overlap=Overlap.ALLOW)], T0)
    outcomes = [(await fire(store, T0 + h * HOUR)) for h in range(3)]
    assert [f.outcome for f in outcomes if f is not None] == [FiringOutcome.STARTED] * 3


async def test_a_schedule_stops_after_its_number_of_executions(store: Store) -> None:
    await store.sync_schedules([spec(max_executions=2)], T0)

    assert await fire(store, T0) is not None
    last = await fire(store, T0 + HOUR)
    assert last is not None and last.outcome is FiringOutcome.STARTED
    stored = await schedule(store, "hourly")
    assert (stored["executions"], stored["next_fire_at"]) == (2, None)
    assert await fire(store, T0 + 2 * HOUR) is None

    # A raised number of executions lets it run again, planned from the declaration.
    raised = dataclasses.replace(spec(max_executions=3), next_fire_at=T0 + 5 * HOUR)
    (again,) = await store.sync_schedules([raised], T0 + 5 * HOUR)
    assert (again.next_fire_at, again.executions) == (T0 + 5 * HOUR, 2)


async def test_fire_of_an_unknown_schedule_is_none(store: Store) -> None:
    run = new_run()
    assert await store.fire("nope", T0, run, T0 + HOUR, [], T0) is None
    with pytest.raises(RunNotFoundError):
        await store.get_run(run.id)
