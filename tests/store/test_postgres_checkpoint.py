"""The PostgreSQL store's group commit: checkpoints ready together share a transaction,
and one that cannot be written does not fail the others."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from runtime import LeaseLostError, RunStatus
from runtime.errors import StoreOperationError
from runtime.store.changes import PROGRESS, Complete
from runtime.store.postgres import PostgresStore
from tests.helpers.postgres import fresh_schema
from tests.helpers.records import T0, create, step


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with fresh_schema() as url:
        schema = url.rpartition("schema=")[2]
        opened = await PostgresStore.open(url.partition("?")[0], schema=schema)
        try:
            yield opened
        finally:
            await opened.close()


async def test_concurrent_checkpoints_share_transactions(store: PostgresStore) -> None:
    runs = [await create(store, status=RunStatus.RUNNING, owner="wrk_a") for _ in range(50)]

    async def drive(run_id: str) -> None:
        for seq in range(5):
            await store.checkpoint(run_id, "wrk_a", [step(seq, f"s{seq}")], PROGRESS, T0)
        await store.checkpoint(run_id, "wrk_a", [], Complete("1", T0), T0)

    async with anyio.create_task_group() as tg:
        for run_id in runs:
            tg.start_soon(drive, run_id)
    assert store.checkpoints == 50 * 6
    # Fifty runs stepping together: far fewer transactions than checkpoints.
    assert store.batches < store.checkpoints / 4
    for run_id in runs:
        record = await store.get_run(run_id)
        assert record.status is RunStatus.COMPLETED
        assert [s.seq for s in record.steps] == [0, 1, 2, 3, 4]


async def test_one_bad_checkpoint_fails_alone_in_its_batch(store: PostgresStore) -> None:
    good = [await create(store, status=RunStatus.RUNNING, owner="wrk_a") for _ in range(3)]
    bad = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    lost = await create(store, status=RunStatus.RUNNING, owner="wrk_b")
    outcomes: dict[str, object] = {}

    async def write(run_id: str, name: str) -> None:
        try:
            outcomes[run_id] = await store.checkpoint(
                run_id, "wrk_a", [step(0, name)], PROGRESS, T0
            )
        except Exception as exc:
            outcomes[run_id] = exc

    # Hold the commit lock so that every checkpoint queues, then all go in one batch.
    async with anyio.create_task_group() as tg, store._commit_lock:
        for run_id in good:
            tg.start_soon(write, run_id, "fine")
        tg.start_soon(write, bad, "nul\x00byte")  # PostgreSQL text refuses NUL
        tg.start_soon(write, lost, "fine")  # held by another worker
        await anyio.sleep(0.1)
        batches = store.batches
    assert store.batches == batches + 1  # one batch (its writes again alone are not counted)
    for run_id in good:
        assert outcomes[run_id] is None
        assert [s.name for s in (await store.get_run(run_id)).steps] == ["fine"]
    assert isinstance(outcomes[bad], StoreOperationError)
    assert (await store.get_run(bad)).steps == []
    assert isinstance(outcomes[lost], LeaseLostError)
    assert (await store.get_run(lost)).steps == []
