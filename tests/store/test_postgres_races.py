"""The PostgreSQL store under real races: several stores (each its own pool, as separate
processes have) fire one schedule and apply operators' actions to one run at once.

Every racing call starts together (one event releases them all), so their transactions
overlap on the server; the assertions are the guarantees DESIGN 5 makes across
processes: each (schedule, nominal fire time) starts exactly one run, and the state
table's decisions are applied one at a time, so none is overtaken or lost.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
import pytest

from runtime import InvalidTransitionError, RunStatus
from runtime.models import CANCELED_BY_OPERATOR, Control, FiringOutcome, Overlap, RunAction
from runtime.store import open_store
from runtime.store.base import Store
from runtime.store.changes import PROGRESS
from runtime.store.records import ScheduleSpec
from tests.helpers.postgres import fresh_schema
from tests.helpers.records import T0, WORKFLOW, create, new_run, step

STORES = 4
"""Stores racing, each with its own pool of connections."""
CALLS = 3
"""Concurrent calls each store makes in one race."""
HOUR = timedelta(hours=1)


@pytest.fixture
async def stores() -> AsyncIterator[list[Store]]:
    async with fresh_schema() as url:
        opened: list[Store] = []
        try:
            for _ in range(STORES):
                opened.append(await open_store(url))
            yield opened
        finally:
            for store in opened:
                await store.close()


async def race(calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``calls`` together; what each returned, or the exception it raised."""
    go = anyio.Event()
    results: list[Any] = [None] * len(calls)

    async def one(index: int) -> None:
        await go.wait()
        try:
            results[index] = await calls[index]()
        except Exception as exc:
            results[index] = exc

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for index in range(len(calls)):
                tg.start_soon(one, index)
            await anyio.sleep(0.05)  # every task waits on the event
            go.set()
    return results


def each_store(stores: list[Store]) -> list[Store]:
    """Every store ``CALLS`` times, interleaved."""
    return [store for _ in range(CALLS) for store in stores]


# -- (schedule, nominal time): one run ---------------------------------------------------


def hourly(overlap: Overlap = Overlap.ALLOW) -> ScheduleSpec:
    return ScheduleSpec("hourly", WORKFLOW, "0 * * * *", "UTC", None, overlap, 3600.0, T0)


async def test_concurrent_firings_of_one_nominal_time_start_one_run(stores: list[Store]) -> None:
    for store in stores:  # every process declares it, as each one's start does
        await store.sync_schedules([hourly()], T0)
    rounds = 5
    for hour in range(rounds):
        nominal = T0 + hour * HOUR
        runs = [new_run() for _ in each_store(stores)]
        # Each scheduler also passes the earlier hours it would call missed: already
        # fired, they stay as they were.
        missed = [T0 + h * HOUR for h in range(hour)]
        results = await race(
            [
                partial(store.fire, "hourly", nominal, run, nominal + HOUR, missed, nominal)
                for store, run in zip(each_store(stores), runs, strict=True)
            ]
        )

        errors = [r for r in results if isinstance(r, Exception)]
        assert errors == []
        fired = [r for r in results if r is not None]
        assert len(fired) == 1, f"hour {hour}: {len(fired)} firings started"
        (firing,) = fired
        assert (firing.nominal_at, firing.outcome) == (nominal, FiringOutcome.STARTED)
        assert firing.run_id in {run.id for run in runs}

    # One run per hour: the losers' runs were never written.
    listed = await stores[0].list_runs(workflow=WORKFLOW, limit=100)
    assert len(listed.runs) == rounds
    firings = await stores[1].list_firings("hourly")
    assert [(f.nominal_at, f.outcome) for f in firings] == [
        (T0 + h * HOUR, FiringOutcome.STARTED) for h in reversed(range(rounds))
    ]
    assert sorted(str(f.run_id) for f in firings) == sorted(r.id for r in listed.runs)
    (stored,) = await stores[2].list_schedules()
    assert (stored.executions, stored.next_fire_at) == (rounds, T0 + rounds * HOUR)
    assert stored.last_run_id == firings[0].run_id


async def test_overlap_skip_reads_the_last_run_of_the_firing_it_waited_for(
    stores: list[Store],
) -> None:
    """A firing that waited for another's lock sees that firing's run, not the one before.

    Two nominal times race: whichever fires first starts a run, and the other, once it
    holds the row, must see that run active and skip; both starting would mean it read
    the last run as it was before the lock.
    """
    await stores[0].sync_schedules([hourly(Overlap.SKIP)], T0)
    for trial in range(4):
        base = T0 + 2 * trial * HOUR
        nominals = [base, base + HOUR]
        calls = [
            partial(store.fire, "hourly", n, new_run(), n + HOUR, [], n + HOUR)
            for store, n in zip(each_store(stores), itertools.cycle(nominals), strict=False)
        ]
        results = await race(calls)

        assert [r for r in results if isinstance(r, Exception)] == []
        outcomes = sorted(r.outcome for r in results if r is not None)
        started = outcomes.count(FiringOutcome.STARTED)
        assert started == 1, outcomes
        # The run this trial started ends, so the next trial starts one again.
        (run,) = [r for r in results if r is not None and r.run_id is not None]
        assert run.run_id is not None
        await stores[0].transition(
            run.run_id, [RunStatus.PENDING], RunStatus.COMPLETED, base + HOUR
        )


# -- the state table, applied once at a time ----------------------------------------------


async def test_concurrent_pause_and_cancel_of_an_unheld_run(stores: list[Store]) -> None:
    """One cancel wins; the pauses before it took effect, those after it were refused."""
    for trial in range(5):
        run_id = await create(stores[0], status=RunStatus.PENDING)
        actions = [RunAction.CANCEL if i % 2 else RunAction.PAUSE for i in range(STORES * CALLS)]
        stamps = [T0 + timedelta(seconds=i + 1) for i in range(len(actions))]
        results = await race(
            [
                partial(store.control_run, run_id, action, at)
                for store, action, at in zip(each_store(stores), actions, stamps, strict=True)
            ]
        )

        assert [r for r in results if not _answered(r)] == [], f"trial {trial}"
        canceled = [
            (at, r)
            for action, at, r in zip(actions, stamps, results, strict=True)
            if action is RunAction.CANCEL and not isinstance(r, Exception)
        ]
        # Two cancels that both read the run before either wrote would both succeed.
        assert len(canceled) == 1, f"trial {trial}: {len(canceled)} cancels applied"
        (at, record), *_ = canceled
        assert (record.status, record.ended_at) == (RunStatus.CANCELED, at)
        for action, r in zip(actions, results, strict=True):
            if action is RunAction.PAUSE and not isinstance(r, Exception):
                assert (r.status, r.control) == (RunStatus.PAUSED, None)
        stored = await stores[-1].get_run(run_id)
        assert (stored.status, stored.ended_at, stored.error) == (
            RunStatus.CANCELED,
            at,
            CANCELED_BY_OPERATOR,
        )


async def test_concurrent_requests_to_a_held_run_while_its_worker_checkpoints(
    stores: list[Store],
) -> None:
    """Pause and cancel requests race each other and the worker's checkpoints: the
    cancel request stands (a pause never replaces it), and every step is kept."""
    worker, *operators = stores
    for trial in range(3):
        run_id = await create(worker, status=RunStatus.RUNNING, owner="wrk_a")
        racing = each_store(operators)
        actions = [(RunAction.PAUSE, RunAction.CANCEL)[i % 2] for i in range(len(racing))]
        calls: list[Callable[[], Awaitable[Any]]] = [
            partial(store.control_run, run_id, action, T0 + HOUR)
            for store, action in zip(racing, actions, strict=True)
        ]
        calls += [
            partial(worker.checkpoint, run_id, "wrk_a", [step(seq, f"s{seq}")], PROGRESS, T0)
            for seq in range(6)
        ]
        results = await race(calls)

        assert [r for r in results if not _answered(r)] == [], f"trial {trial}"
        for action, r in zip(actions, results, strict=False):
            if isinstance(r, Exception):
                assert action is RunAction.PAUSE and "cancel is already under way" in str(r)
            else:
                assert r.status is RunStatus.RUNNING and r.owner_id == "wrk_a"
                assert r.control is (Control.PAUSE if action is RunAction.PAUSE else Control.CANCEL)
        stored = await operators[0].get_run(run_id)
        assert (stored.status, stored.control, stored.owner_id) == (
            RunStatus.RUNNING,
            Control.CANCEL,
            "wrk_a",
        )
        assert [s.seq for s in stored.steps] == list(range(6))
        # The worker is told at its next checkpoint, whichever process asked.
        assert await worker.checkpoint(run_id, "wrk_a", [], PROGRESS, T0 + HOUR) == "cancel"


async def test_a_claim_racing_a_cancel_either_holds_the_run_or_finds_it_canceled(
    stores: list[Store],
) -> None:
    """Never both: a run canceled outright must not be claimed, nor a claimed one ended."""
    run_ids = [await create(stores[0], status=RunStatus.PENDING) for _ in range(12)]
    calls: list[Callable[[], Awaitable[Any]]] = []
    for index, run_id in enumerate(run_ids):
        claimer, canceler = stores[index % STORES], stores[(index + 1) % STORES]
        calls.append(partial(claimer.claim_run, run_id, "wrk_a", None, T0))
        calls.append(partial(canceler.control_run, run_id, RunAction.CANCEL, T0))
    results = await race(calls)

    assert [r for r in results if isinstance(r, Exception)] == []
    for run_id, claimed in zip(run_ids, results[::2], strict=True):
        stored = await stores[0].get_run(run_id)
        if claimed is not None:
            assert (stored.status, stored.owner_id, stored.control) == (
                RunStatus.RUNNING,
                "wrk_a",
                Control.CANCEL,
            )
        else:
            assert (stored.status, stored.owner_id) == (RunStatus.CANCELED, None)


# -- wake-ups across processes ------------------------------------------------------------


async def test_a_fired_run_and_a_canceled_run_wake_other_processes(stores: list[Store]) -> None:
    scheduler, watcher = stores[0], stores[1]
    await scheduler.sync_schedules([hourly()], T0)

    token = await watcher.change_token()
    assert await scheduler.fire("hourly", T0, new_run(), T0 + HOUR, [], T0) is not None
    with anyio.fail_after(5):
        token = await _next_change(watcher, token)

    run_id = await create(scheduler, status=RunStatus.PAUSED)
    token = await watcher.change_token()
    await scheduler.control_run(run_id, RunAction.CANCEL, T0)
    with anyio.fail_after(5):
        await _next_change(watcher, token)


async def _next_change(store: Store, token: int) -> int:
    while (moved := await store.wait_change(token, 1.0)) == token:
        pass
    return moved


def _answered(result: Any) -> bool:
    """A call's result, or the refusal the state table may give: anything else is a failure."""
    return not isinstance(result, Exception) or isinstance(result, InvalidTransitionError)


# -- declarations --------------------------------------------------------------------------


async def test_concurrent_declarations_never_deadlock(stores: list[Store]) -> None:
    """Processes starting together, each declaring an overlapping set of schedules.

    Each declaration inserts, updates and deactivates several rows; interleaved, two of
    them could each wait for the other's rows. Every one must succeed, and each schedule
    exist once, as the declaration that went last left it.
    """
    names = [f"s{i}" for i in range(8)]

    def declared(index: int) -> list[ScheduleSpec]:
        mine = [names[(index + k) % len(names)] for k in range(5)]
        return [dataclasses.replace(hourly(), name=name) for name in mine]

    for trial in range(3):
        calls = [
            partial(store.sync_schedules, declared(index), T0 + trial * HOUR)
            for index, store in enumerate(each_store(stores))
        ]
        results = await race(calls)

        assert [r for r in results if isinstance(r, Exception)] == [], f"trial {trial}"
        listed = await stores[0].list_schedules()
        assert sorted(s.name for s in listed) == sorted({s.name for c in calls for s in c.args[0]})
        # The last declaration's schedules are active, and only those (no worker declares
        # any other: these stores registered none).
        active = [s.name for s in listed if s.active]
        assert active in [sorted(s.name for s in call.args[0]) for call in calls]
