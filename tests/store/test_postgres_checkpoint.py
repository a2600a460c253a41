"""The PostgreSQL store's group commit: checkpoints ready together share a transaction,
and one that cannot be written does not fail the others."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from runtime import LeaseLostError, RunStatus
from runtime.errors import StoreOperationError
from runtime.models import Control, RunAction
from runtime.store.changes import PROGRESS, Complete, RunChange
from runtime.store.postgres import PostgresStore
from runtime.store.records import StagedEvent
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


async def test_a_batch_of_every_kind_gets_what_each_alone_would(store: PostgresStore) -> None:
    """One batch: progress, a completion, a completion with a pause pending, a completion
    whose run staged events (the long way), a run another worker holds."""
    plain, done, paused, staging, lost = [
        await create(store, status=RunStatus.RUNNING, owner="wrk_a") for _ in range(5)
    ]
    await store.checkpoint(
        staging, "wrk_a", [step(0, "stage", events=(StagedEvent("x.y", "1", "{}"),))], PROGRESS, T0
    )
    await store.control_run(paused, RunAction.PAUSE, T0)
    await store.claim_run(lost, "wrk_b", "wrk_a", T0)
    outcomes: dict[str, object] = {}

    async def write(run_id: str, change: RunChange) -> None:
        try:
            outcomes[run_id] = await store.checkpoint(
                run_id, "wrk_a", [step(1, "last")], change, T0
            )
        except Exception as exc:
            outcomes[run_id] = exc

    batches = store.batches
    async with anyio.create_task_group() as tg, store._commit_lock:
        tg.start_soon(write, plain, PROGRESS)
        for run_id in (done, paused, staging, lost):
            tg.start_soon(write, run_id, Complete('"out"', T0))
        await anyio.sleep(0.1)
    assert store.batches == batches + 1
    assert outcomes[plain] is None
    assert outcomes[done] is None
    assert outcomes[paused] is Control.PAUSE
    assert outcomes[staging] is None
    assert isinstance(outcomes[lost], LeaseLostError)
    runs = {run_id: await store.get_run(run_id) for run_id in (plain, done, paused, staging, lost)}
    assert runs[plain].status is RunStatus.RUNNING
    assert (runs[done].status, runs[done].output, runs[done].owner_id) == (
        RunStatus.COMPLETED,
        "out",
        None,
    )
    assert (runs[paused].status, runs[paused].owner_id) == (RunStatus.RUNNING, "wrk_a")
    assert runs[staging].status is RunStatus.COMPLETED
    assert [s.name for s in runs[lost].steps] == []
    for run_id in (plain, done, paused, staging):
        assert [s.name for s in runs[run_id].steps][-1] == "last"
    published = await store.list_events(name="x.y")
    assert [e.source_run_id for e in published.items] == [staging]
