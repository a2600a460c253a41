"""The Store contract, workers: heartbeats, the leases they hold; the database, and closing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime import RunStatus, StoreClosedError
from runtime.store.base import Store
from runtime.store.changes import PROGRESS
from runtime.store.records import WorkerRow
from tests.helpers.records import T0, WORKFLOW, add_worker, create, new_run, step
from tests.store.backends import Opener

# -- workers ---------------------------------------------------------------------------


async def test_workers_upsert_and_heartbeat(store: Store) -> None:
    await store.upsert_worker(WorkerRow("wrk_b", "host-b", 2, T0, T0))
    await store.upsert_worker(WorkerRow("wrk_a", "host-a", 1, T0, T0))
    later = T0 + timedelta(seconds=10)
    # A second upsert refreshes the heartbeat but keeps when it started.
    await store.upsert_worker(WorkerRow("wrk_a", "host-a", 1, later, later))
    assert await store.heartbeat("wrk_b", later + timedelta(seconds=1))
    assert not await store.heartbeat("wrk_unknown", later)  # taken for dead: not registered

    workers = await store.list_workers()

    assert [(w.id, w.host, w.pid) for w in workers] == [
        ("wrk_a", "host-a", 1),
        ("wrk_b", "host-b", 2),
    ]
    assert [(w.started_at, w.heartbeat_at) for w in workers] == [
        (T0, later),
        (T0, later + timedelta(seconds=1)),
    ]


async def test_heartbeat_renews_the_leases_of_the_worker(store: Store) -> None:
    now = T0 + timedelta(minutes=5)
    await add_worker(store, "wrk_a", T0)
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    stale_before = now - timedelta(seconds=30)
    assert [r.id for r in await store.recoverable_runs([WORKFLOW], now, stale_before, 10)] == [
        run_id
    ]

    await store.heartbeat("wrk_a", now)

    assert await store.recoverable_runs([WORKFLOW], now, stale_before, 10) == []


async def test_remove_workers_releases_their_runs(store: Store) -> None:
    await add_worker(store, "wrk_dead", T0)
    await add_worker(store, "wrk_other", T0)
    running = await create(store, status=RunStatus.RUNNING, owner="wrk_dead")
    sleeping = await create(store, status=RunStatus.SLEEPING, owner="wrk_dead")
    compensating = await create(store, status=RunStatus.COMPENSATING, owner="wrk_dead")
    others = await create(store, status=RunStatus.RUNNING, owner="wrk_other")
    later = T0 + timedelta(seconds=40)

    released = await store.remove_workers(["wrk_dead"], later)

    assert released == 3
    assert [w.id for w in await store.list_workers()] == ["wrk_other"]
    states = {
        run_id: ((r := await store.get_run(run_id)).status, r.owner_id)
        for run_id in (running, sleeping, compensating, others)
    }
    assert states == {
        running: (RunStatus.PENDING, None),
        sleeping: (RunStatus.SLEEPING, None),
        compensating: (RunStatus.COMPENSATING, None),
        others: (RunStatus.RUNNING, "wrk_other"),
    }
    assert (await store.get_run(running)).updated_at == later


async def test_remove_no_workers_releases_nothing(store: Store) -> None:
    await add_worker(store, "wrk_a", T0)
    await create(store, status=RunStatus.RUNNING, owner="wrk_a")

    assert await store.remove_workers([], T0) == 0
    assert [w.id for w in await store.list_workers()] == ["wrk_a"]


async def test_check_file_passes_while_the_database_is_the_one_opened(store: Store) -> None:
    await store.create_run(new_run())
    await store.check_file()  # raises DatabaseReplacedError once it is not


async def test_close_keeps_what_was_committed_and_refuses_later_calls(
    store: Store, open_store: Opener
) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(1, "a")], PROGRESS, T0)

    await store.close()
    await store.close()  # a second close is harmless

    with pytest.raises(StoreClosedError):
        await store.get_run(run_id)
    with pytest.raises(StoreClosedError):
        await store.create_run(new_run())
    reopened = await open_store()
    assert [s.seq for s in (await reopened.get_run(run_id)).steps] == [1]
