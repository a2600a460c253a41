"""The Store contract, writes: create, claim, checkpoint, transition (``store`` in conftest)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anyio
import pytest

from runtime import RunStatus
from runtime.store.base import Store
from runtime.store.changes import Complete, StartRollback
from tests.helpers.records import T0, WORKFLOW, create, new_run

# -- create_run ------------------------------------------------------------------


async def test_create_run_without_a_key_inserts_every_time(store: Store) -> None:
    first, created_first = await store.create_run(new_run(input={"order_id": "o1"}))
    second, created_second = await store.create_run(new_run(input={"order_id": "o1"}))

    assert created_first and created_second
    assert first.id != second.id
    assert first.workflow == WORKFLOW
    assert first.status is RunStatus.PENDING
    assert first.input == {"order_id": "o1"}
    assert first.idempotency_key is None
    assert first.output is None and first.error is None and first.ended_at is None
    assert first.created_at == T0 and first.available_at == T0
    stored = await store.get_run(first.id)
    assert stored.input == {"order_id": "o1"}
    assert stored.status is RunStatus.PENDING


async def test_create_run_with_a_used_key_returns_the_existing_run(store: Store) -> None:
    first, created_first = await store.create_run(new_run(key="tx-1", input={"n": 1}))
    again, created_again = await store.create_run(new_run(key="tx-1", input={"n": 2}))

    assert created_first is True
    assert created_again is False
    assert again.id == first.id
    assert again.input == {"n": 1}  # the first run, not the second request
    assert again.idempotency_key == "tx-1"
    page = await store.list_runs(workflow=WORKFLOW)
    assert [run.id for run in page.runs] == [first.id]


async def test_the_same_key_in_another_workflow_is_another_run(store: Store) -> None:
    first, _ = await store.create_run(new_run(key="tx-1"))
    other, created = await store.create_run(new_run(key="tx-1", workflow="refund"))

    assert created is True
    assert other.id != first.id
    assert await store.find_run("refund", "tx-1") == other
    assert (await store.find_run(WORKFLOW, "tx-1")).id == first.id  # type: ignore[union-attr]
    assert await store.find_run(WORKFLOW, "tx-unknown") is None


async def test_concurrent_creates_with_one_key_make_one_run(store: Store) -> None:
    outcomes: list[tuple[str, bool]] = []

    async def start(n: int) -> None:
        record, created = await store.create_run(new_run(key="tx-race", input={"n": n}))
        outcomes.append((record.id, created))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(start, n)

    assert sorted(created for _, created in outcomes) == [False] * 7 + [True]
    assert len({run_id for run_id, _ in outcomes}) == 1
    assert len((await store.list_runs(workflow=WORKFLOW)).runs) == 1


async def test_two_stores_creating_with_one_key_make_one_run(store: Store, other: Store) -> None:
    outcomes: list[tuple[str, bool]] = []

    async def start(s: Store, n: int) -> None:
        record, created = await s.create_run(new_run(key=f"tx-{n % 4}", input={"n": n}))
        outcomes.append((record.id, created))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for n in range(16):
                tg.start_soon(start, store if n % 2 else other, n)

    assert sum(created for _, created in outcomes) == 4
    assert len({run_id for run_id, _ in outcomes}) == 4
    runs = (await other.list_runs(workflow=WORKFLOW)).runs
    assert sorted(run.idempotency_key or "" for run in runs) == ["tx-0", "tx-1", "tx-2", "tx-3"]


async def test_the_created_record_is_what_a_read_returns(store: Store) -> None:
    record, _ = await store.create_run(
        new_run(key="k", status=RunStatus.RUNNING, owner="wrk_a", input={"deep": [1, {"x": None}]})
    )

    assert record == await store.get_run(record.id)
    assert record == await store.find_run(WORKFLOW, "k")


async def test_times_come_back_as_aware_utc(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    moment = datetime(2026, 3, 1, 21, 30, tzinfo=tokyo)

    record, _ = await store.create_run(new_run(created_at=moment, available_at=moment))
    stored = await store.get_run(record.id)

    for value in (record.created_at, stored.created_at, stored.available_at, stored.updated_at):
        assert value == moment
        assert value.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create_run(new_run(created_at=datetime(2026, 1, 1)))


# -- claim_run ---------------------------------------------------------------------


async def test_claim_run_is_compare_and_set_on_the_owner(store: Store) -> None:
    run_id = await create(store)

    claimed = await store.claim_run(run_id, "wrk_a", None, T0)
    assert claimed is not None
    assert (claimed.owner_id, claimed.status) == ("wrk_a", RunStatus.RUNNING)

    assert await store.claim_run(run_id, "wrk_b", None, T0) is None  # someone was faster
    assert await store.claim_run(run_id, "wrk_b", "wrk_c", T0) is None  # wrong expectation
    assert (await store.get_run(run_id)).owner_id == "wrk_a"

    taken = await store.claim_run(run_id, "wrk_b", "wrk_a", T0 + timedelta(seconds=1))
    assert taken is not None
    assert (taken.owner_id, taken.status) == ("wrk_b", RunStatus.RUNNING)
    assert taken.updated_at == T0 + timedelta(seconds=1)


async def test_claim_run_wakes_a_sleeping_run_and_keeps_a_compensating_one(store: Store) -> None:
    sleeping = await create(store, status=RunStatus.SLEEPING)
    compensating = await create(store, status=RunStatus.COMPENSATING)

    woke = await store.claim_run(sleeping, "wrk_a", None, T0)
    kept = await store.claim_run(compensating, "wrk_a", None, T0)

    assert woke is not None and woke.status is RunStatus.RUNNING
    assert kept is not None and kept.status is RunStatus.COMPENSATING


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.PAUSED,
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.COMPENSATION_FAILED,
    ],
)
async def test_claim_run_refuses_paused_and_terminal_runs(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)

    assert await store.claim_run(run_id, "wrk_a", None, T0) is None
    record = await store.get_run(run_id)
    assert (record.status, record.owner_id) == (status, None)


async def test_claim_run_of_an_unknown_run_is_none(store: Store) -> None:
    assert await store.claim_run("run_missing", "wrk_a", None, T0) is None


# -- transition --------------------------------------------------------------------


async def test_transition_applies_only_from_an_expected_status(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    later = T0 + timedelta(seconds=3)

    refused = await store.transition(run_id, [RunStatus.COMPLETED], RunStatus.COMPENSATING, later)
    assert refused is None
    assert (await store.get_run(run_id)).status is RunStatus.RUNNING

    moved = await store.transition(
        run_id,
        [RunStatus.PENDING, RunStatus.RUNNING],
        RunStatus.PAUSED,
        later,
        error='{"step": null, "type": "Paused", "message": "by operator"}',
    )
    assert moved is not None
    assert (moved.status, moved.owner_id, moved.updated_at) == (RunStatus.PAUSED, None, later)
    assert moved.error is not None and moved.error.message == "by operator"


async def test_transition_sets_the_owner_and_keeps_an_existing_error(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    error = '{"step": "s", "type": "E", "message": "kept"}'
    await store.checkpoint(run_id, "wrk_a", [], StartRollback(error), T0)
    await store.checkpoint(run_id, "wrk_a", [], Complete(output="null", ended_at=T0), T0)

    moved = await store.transition(
        run_id, [RunStatus.COMPLETED], RunStatus.COMPENSATING, T0, owner_id="wrk_b"
    )

    assert moved is not None
    assert (moved.status, moved.owner_id) == (RunStatus.COMPENSATING, "wrk_b")
    assert moved.error is not None and moved.error.message == "kept"


async def test_transition_of_an_unknown_run_is_none(store: Store) -> None:
    assert await store.transition("run_nope", [RunStatus.PENDING], RunStatus.PAUSED, T0) is None
