"""The Store contract, the run queue: when the next run is due, runs nobody here knows, pins."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import anyio

from runtime import RunStatus
from runtime.models import RunKind
from runtime.store.base import Store
from tests.helpers.records import T0, WORKFLOW, create, new_run

SOON, LATER = T0 + timedelta(seconds=5), T0 + timedelta(minutes=5)

# -- next_run_due -----------------------------------------------------------------------


async def test_next_run_due_is_the_earliest_queued_run_of_those_workflows(store: Store) -> None:
    await create(store, available_at=LATER)
    await create(store, status=RunStatus.SLEEPING, available_at=SOON)
    await create(store, workflow="refund", available_at=T0)
    # Held, paused or ended runs are not waiting in the queue, however early.
    for status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.COMPLETED):
        await create(store, status=status, available_at=T0 - timedelta(days=1))

    assert await store.next_run_due([WORKFLOW]) == SOON
    assert await store.next_run_due([WORKFLOW, "refund"]) == T0
    assert await store.next_run_due(["refund"]) == T0
    assert await store.next_run_due(["unknown"]) is None
    assert await store.next_run_due([]) is None


async def test_next_run_due_moves_as_runs_are_claimed(store: Store) -> None:
    first = await create(store, available_at=SOON)
    await create(store, available_at=LATER)

    await store.claim_run(first, "wrk_a", None, SOON)

    assert await store.next_run_due([WORKFLOW]) == LATER


# -- unclaimed_unknown ------------------------------------------------------------------


async def test_unclaimed_unknown_are_due_pending_runs_of_workflows_not_known_here(
    store: Store,
) -> None:
    included = {
        "unknown, due": await create(store, workflow="elsewhere", available_at=SOON),
        "another unknown, due earlier": await create(store, workflow="other", available_at=T0),
    }
    deferred = await create(store, workflow="elsewhere")
    await store.defer_run(deferred, None, '{"type": "E", "message": "m", "step": null}', T0)
    excluded = {
        "known": await create(store, available_at=T0),
        "not due": await create(store, workflow="elsewhere", available_at=LATER),
        "held": await create(store, workflow="elsewhere", status=RunStatus.RUNNING, owner="w"),
        "sleeping": await create(store, workflow="elsewhere", status=RunStatus.SLEEPING),
        "paused": await create(store, workflow="elsewhere", status=RunStatus.PAUSED),
        "ended": await create(store, workflow="elsewhere", status=RunStatus.FAILED),
        "carries an error": deferred,
    }

    found = await store.unclaimed_unknown([WORKFLOW], SOON, 10)

    names = {run_id: name for name, run_id in {**included, **excluded}.items()}
    assert [names[run.id] for run in found] == [
        "another unknown, due earlier",
        "unknown, due",
    ]


async def test_unclaimed_unknown_respects_its_limit_earliest_first(store: Store) -> None:
    runs = [
        await create(store, workflow=f"wf-{i}", available_at=T0 - timedelta(i)) for i in range(4)
    ]

    found = await store.unclaimed_unknown([], T0, 2)

    assert [run.id for run in found] == [runs[3], runs[2]]


# -- claim_run's pin -------------------------------------------------------------------


async def test_a_run_started_by_name_takes_the_version_it_is_first_claimed_with(
    store: Store,
) -> None:
    by_name = dataclasses.replace(new_run(), kind=RunKind.UNRESOLVED.value)
    record, _ = await store.create_run(by_name)
    assert (record.kind, record.version) == (RunKind.UNRESOLVED, None)

    claimed = await store.claim_run(record.id, "wrk_a", None, T0, pin=("3", "durable"))

    assert claimed is not None
    assert (claimed.kind, claimed.version) == (RunKind.DURABLE, "3")
    # Pinned once: a later claim with another pin keeps it.
    again = await store.claim_run(record.id, "wrk_b", "wrk_a", T0, pin=("4", "composition"))
    assert again is not None and (again.kind, again.version) == (RunKind.DURABLE, "3")


async def test_a_pin_leaves_a_run_of_a_known_style_alone(store: Store) -> None:
    record, _ = await store.create_run(dataclasses.replace(new_run(), version="1"))

    claimed = await store.claim_run(record.id, "wrk_a", None, T0, pin=("2", "durable"))

    assert claimed is not None
    assert (claimed.kind, claimed.version) == (RunKind.COMPOSITION, "1")


async def test_two_stores_claiming_one_run_at_once_one_wins(store: Store, other: Store) -> None:
    run_ids = [await create(store) for _ in range(10)]
    won: dict[str, list[str]] = {"wrk_a": [], "wrk_b": []}

    async def take(s: Store, owner: str) -> None:
        for run_id in run_ids:
            if await s.claim_run(run_id, owner, None, T0) is not None:
                won[owner].append(run_id)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take, store, "wrk_a")
            tg.start_soon(take, other, "wrk_b")

    assert sorted(won["wrk_a"] + won["wrk_b"]) == sorted(run_ids)
    for owner, ids in won.items():
        assert {(await store.get_run(i)).owner_id for i in ids} <= {owner}
