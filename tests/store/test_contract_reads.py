"""The Store contract, reads: a run and its steps, pages of runs, the runs due for recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime import RunNotFoundError, RunStatus, StoreError
from runtime.store.base import Store
from runtime.store.changes import PROGRESS
from tests.helpers.records import T0, WORKFLOW, add_worker, create, step

# -- reads -------------------------------------------------------------------------


async def test_get_run_of_an_unknown_run_raises(store: Store) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        await store.get_run("run_missing")
    assert caught.value.run_id == "run_missing"
    assert isinstance(caught.value, LookupError)


async def test_steps_are_read_in_sequence_order(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(3, "c"), step(1, "a")], PROGRESS, T0)
    await store.checkpoint(run_id, "wrk_a", [step(10, "j"), step(2, "b")], PROGRESS, T0)

    expected = [(1, "a"), (2, "b"), (3, "c"), (10, "j")]
    assert [(s.seq, s.name) for s in await store.load_steps(run_id)] == expected
    assert [(s.seq, s.name) for s in (await store.get_run(run_id)).steps] == expected
    assert (await store.get_run(run_id, steps=False)).steps == []
    assert all(s.run_id == run_id for s in await store.load_steps(run_id))


async def test_steps_of_one_run_do_not_leak_into_another(store: Store) -> None:
    one = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    two = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(one, "wrk_a", [step(1, "one")], PROGRESS, T0)

    assert await store.load_steps(two) == []
    assert [s.name for s in await store.load_steps(one)] == ["one"]


# -- list_runs -----------------------------------------------------------------------


async def test_list_runs_is_newest_first_and_filters(store: Store) -> None:
    a = await create(store, created_at=T0, status=RunStatus.COMPLETED)
    b = await create(store, created_at=T0 + timedelta(seconds=1), status=RunStatus.FAILED)
    c = await create(store, created_at=T0 + timedelta(seconds=2), workflow="refund")
    d = await create(
        store, created_at=T0 + timedelta(seconds=3), status=RunStatus.FAILED, workflow="refund"
    )

    def ids(page: object) -> list[str]:
        return [run.id for run in page.runs]  # type: ignore[attr-defined]

    assert ids(await store.list_runs()) == [d, c, b, a]
    assert ids(await store.list_runs(workflow=WORKFLOW)) == [b, a]
    assert ids(await store.list_runs(status=[RunStatus.FAILED])) == [d, b]
    assert ids(await store.list_runs(status=[RunStatus.FAILED, RunStatus.COMPLETED])) == [d, b, a]
    assert ids(await store.list_runs(status=[RunStatus.FAILED], workflow="refund")) == [d]
    assert ids(await store.list_runs(status=[RunStatus.CANCELED])) == []
    assert (await store.list_runs()).next_cursor is None


async def test_list_runs_pages_without_duplicates_or_gaps(store: Store) -> None:
    # Several runs share a created_at, so the cursor must break ties.
    created = [T0 + timedelta(seconds=i // 3) for i in range(11)]
    expected = []
    for moment in created:
        expected.append(await create(store, created_at=moment))
    await create(store, workflow="other", created_at=T0 + timedelta(seconds=1))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_runs(workflow=WORKFLOW, limit=4, cursor=cursor)
        pages += 1
        assert len(page.runs) <= 4
        seen += [run.id for run in page.runs]
        cursor = page.next_cursor
        if cursor is None:
            break
        assert pages < 10, "paging does not end"

    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == set(expected)
    moments = [(await store.get_run(run_id, steps=False)).created_at for run_id in seen]
    assert moments == sorted(moments, reverse=True)


async def test_list_runs_with_an_exact_page_has_no_next_cursor(store: Store) -> None:
    for i in range(3):
        await create(store, created_at=T0 + timedelta(seconds=i))

    first = await store.list_runs(limit=3)

    assert len(first.runs) == 3
    assert first.next_cursor is None


async def test_list_runs_refuses_a_bad_limit_or_cursor(store: Store) -> None:
    with pytest.raises(StoreError, match="limit"):
        await store.list_runs(limit=0)
    with pytest.raises(StoreError, match="cursor"):
        await store.list_runs(cursor="not-a-cursor")


# -- recoverable_runs -----------------------------------------------------------------


async def test_recoverable_runs_are_the_due_runs_nobody_live_holds(store: Store) -> None:
    now = T0 + timedelta(minutes=10)
    stale_before = now - timedelta(seconds=30)
    await add_worker(store, "wrk_live", now - timedelta(seconds=5))
    await add_worker(store, "wrk_stale", now - timedelta(seconds=120))

    past, future = now - timedelta(seconds=1), now + timedelta(seconds=60)
    included = {
        "unowned pending due": await create(store, available_at=past),
        "pending due exactly now": await create(store, available_at=now),
        "sleeping due": await create(store, status=RunStatus.SLEEPING, available_at=past),
        "running, owner gone": await create(
            store, status=RunStatus.RUNNING, owner="wrk_gone", available_at=future
        ),
        "running, stale heartbeat": await create(
            store, status=RunStatus.RUNNING, owner="wrk_stale"
        ),
        "compensating, stale": await create(
            store, status=RunStatus.COMPENSATING, owner="wrk_stale"
        ),
        "running, unowned": await create(store, status=RunStatus.RUNNING),
    }
    excluded = {
        "pending not due": await create(store, available_at=future),
        "sleeping not due": await create(store, status=RunStatus.SLEEPING, available_at=future),
        "running, live owner": await create(store, status=RunStatus.RUNNING, owner="wrk_live"),
        "compensating, live owner": await create(
            store, status=RunStatus.COMPENSATING, owner="wrk_live"
        ),
        "unknown workflow": await create(store, workflow="not-known", available_at=past),
        "paused": await create(store, status=RunStatus.PAUSED, available_at=past),
        "completed": await create(store, status=RunStatus.COMPLETED, available_at=past),
        "failed": await create(store, status=RunStatus.FAILED, available_at=past),
        "canceled": await create(store, status=RunStatus.CANCELED, available_at=past),
        "compensation_failed": await create(
            store, status=RunStatus.COMPENSATION_FAILED, available_at=past
        ),
    }

    found = await store.recoverable_runs([WORKFLOW, "refund"], now, stale_before, 100)

    found_ids = {run.id for run in found}
    names = {run_id: name for name, run_id in {**included, **excluded}.items()}
    assert sorted(names[i] for i in found_ids) == sorted(included)
    assert len(found) == len(found_ids)


async def test_recoverable_runs_of_no_workflow_is_empty(store: Store) -> None:
    await create(store)
    assert await store.recoverable_runs([], T0, T0, 10) == []


async def test_recoverable_runs_respects_the_limit_and_takes_the_earliest_due(
    store: Store,
) -> None:
    runs = [await create(store, available_at=T0 - timedelta(seconds=i)) for i in range(5)]

    found = await store.recoverable_runs([WORKFLOW], T0, T0, 2)

    assert [run.id for run in found] == [runs[4], runs[3]]


# -- count_runs (GET /metrics) -------------------------------------------------------


async def test_count_runs_counts_each_workflow_in_each_status(store: Store) -> None:
    assert await store.count_runs() == {}
    for status, workflow in [
        (RunStatus.COMPLETED, WORKFLOW),
        (RunStatus.COMPLETED, WORKFLOW),
        (RunStatus.FAILED, WORKFLOW),
        (RunStatus.PENDING, "refund"),
        (RunStatus.RUNNING, "refund"),
        (RunStatus.PAUSED, "a-first"),
    ]:
        await create(store, status=status, workflow=workflow)
    await store.control_run(await create(store, workflow="refund"), "cancel", T0)

    counts = await store.count_runs()

    # Every status of every workflow that has runs, zeros included, and nothing else.
    assert set(counts) == {(w, s) for w in (WORKFLOW, "refund", "a-first") for s in RunStatus}
    assert {key: n for key, n in counts.items() if n} == {
        (WORKFLOW, RunStatus.COMPLETED): 2,
        (WORKFLOW, RunStatus.FAILED): 1,
        ("refund", RunStatus.PENDING): 1,
        ("refund", RunStatus.RUNNING): 1,
        ("refund", RunStatus.CANCELED): 1,
        ("a-first", RunStatus.PAUSED): 1,
    }


async def test_count_runs_follows_a_run_through_its_statuses(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    assert (await store.count_runs())[WORKFLOW, RunStatus.RUNNING] == 1
    assert await store.transition(run_id, [RunStatus.RUNNING], RunStatus.PAUSED, T0)
    counts = await store.count_runs()
    assert (counts[WORKFLOW, RunStatus.RUNNING], counts[WORKFLOW, RunStatus.PAUSED]) == (0, 1)
