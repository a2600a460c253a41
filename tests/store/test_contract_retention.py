"""The Store contract, retention: ``prune`` batches, their cursor, and what is never removed.

The rules one by one are in ``test_retention.py`` (SQLite rows seeded directly); here
each is reached through the protocol alone, as a backend's caller sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtime import RunNotFoundError, RunStatus
from runtime.models import DeliveryStatus, Overlap
from runtime.store.base import Store
from runtime.store.changes import Complete, EndRollback, RunChange
from runtime.store.pruning import PRUNE_BATCH, PruneBatch, PruneCounts, PruneCursor, PruneCutoffs
from runtime.store.records import ScheduleSpec, SubscriberRow
from tests.helpers.records import T0, WORKFLOW, create, new_run, step
from tests.store.bus import event

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)
CUTOFF = NOW - timedelta(days=30)


async def ended(
    store: Store, status: RunStatus, at: datetime, *, steps: int = 2, key: str | None = None
) -> str:
    """A run that ended ``status`` at ``at`` with ``steps`` steps; its id."""
    record, _ = await store.create_run(
        new_run(status=RunStatus.RUNNING, owner="wrk_a", key=key, created_at=T0)
    )
    done: RunChange = (
        Complete(output="null", ended_at=at)
        if status is RunStatus.COMPLETED
        else EndRollback(status, at)
    )
    await store.checkpoint(record.id, "wrk_a", [step(i, f"s{i}") for i in range(steps)], done, at)
    return record.id


async def exists(store: Store, run_id: str) -> bool:
    try:
        await store.get_run(run_id, steps=False)
    except RunNotFoundError:
        return False
    return True


async def prune_all(
    store: Store, cutoffs: PruneCutoffs, *, limit: int = PRUNE_BATCH, dry_run: bool = False
) -> list[PruneBatch]:
    """Batch after batch, passing the cursor on, until no more; the batches."""
    batches: list[PruneBatch] = []
    cursor: PruneCursor | None = None
    while not batches or batches[-1].more:
        assert len(batches) < 100, "pruning does not end"
        batches.append(await store.prune(cutoffs, limit=limit, after=cursor, dry_run=dry_run))
        cursor = batches[-1].cursor
    return batches


def total(batches: list[PruneBatch]) -> PruneCounts:
    return sum((b.counts for b in batches), PruneCounts())


async def test_a_completed_run_past_retention_goes_with_its_steps(store: Store) -> None:
    old = await ended(store, RunStatus.COMPLETED, OLD, steps=3)
    recent = await ended(store, RunStatus.COMPLETED, RECENT, steps=3)

    batches = await prune_all(store, PruneCutoffs(completed=CUTOFF))

    assert total(batches) == PruneCounts(runs=1, steps=3)
    assert not await exists(store, old)
    assert await store.load_steps(old) == []
    assert [s.seq for s in await store.load_steps(recent)] == [0, 1, 2]


@pytest.mark.parametrize(
    "status", [RunStatus.FAILED, RunStatus.COMPENSATION_FAILED, RunStatus.CANCELED]
)
async def test_a_run_an_operator_can_retry_waits_for_failed_retention(
    store: Store, status: RunStatus
) -> None:
    run_id = await ended(store, status, OLD)

    await prune_all(store, PruneCutoffs(completed=CUTOFF))
    assert await exists(store, run_id)

    await prune_all(store, PruneCutoffs(completed=CUTOFF, failed=CUTOFF))
    assert not await exists(store, run_id)


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.SLEEPING,
        RunStatus.PAUSED,
        RunStatus.COMPENSATING,
    ],
)
async def test_a_run_that_has_not_ended_is_never_removed(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status, created_at=NOW - timedelta(days=400))

    batches = await prune_all(store, PruneCutoffs(completed=NOW, failed=NOW))

    assert total(batches).runs == 0
    assert await exists(store, run_id)


async def test_batches_follow_their_cursor_and_a_dry_run_removes_nothing(store: Store) -> None:
    runs = [await ended(store, RunStatus.COMPLETED, OLD + timedelta(seconds=i)) for i in range(7)]
    cutoffs = PruneCutoffs(completed=CUTOFF)

    dry = await prune_all(store, cutoffs, limit=3, dry_run=True)
    assert [await exists(store, run_id) for run_id in runs] == [True] * 7

    batches = await prune_all(store, cutoffs, limit=3)

    assert total(dry) == total(batches) == PruneCounts(runs=7, steps=14)
    assert len(batches) >= 3
    assert all(b.counts.runs <= 3 for b in batches)
    assert [await exists(store, run_id) for run_id in runs] == [False] * 7
    assert (await store.prune(cutoffs)).counts.total == 0


async def test_no_cutoff_removes_nothing(store: Store) -> None:
    run_id = await ended(store, RunStatus.COMPLETED, OLD)

    batch = await store.prune(PruneCutoffs(completed=None))

    assert (batch.counts.total, batch.more) == (0, False)
    assert await exists(store, run_id)


async def test_a_key_protects_only_as_long_as_its_run_is_kept(store: Store) -> None:
    first = await ended(store, RunStatus.COMPLETED, OLD, key="order-1")
    assert (await store.create_run(new_run(key="order-1")))[0].id == first

    await prune_all(store, PruneCutoffs(completed=CUTOFF))

    again, created = await store.create_run(new_run(key="order-1"))
    assert created and again.id != first
    assert await store.find_run(WORKFLOW, "order-1") == again


async def test_an_event_goes_once_every_delivery_is_done(store: Store) -> None:
    await store.sync_subscribers([SubscriberRow("audit", ("*",), 3)], OLD)
    done, waiting = event("a", at=OLD), event("b", at=OLD)
    for e in (done, waiting):
        await store.emit(e)
    await store.fan_out(OLD, 10)
    claimed = await store.claim_deliveries("wrk_a", ["audit"], OLD, OLD, 10)
    (finished,) = [w for w in claimed if w.event.id == done.id]
    await store.finish_delivery(finished.id, "wrk_a", DeliveryStatus.DONE, OLD)

    batches = await prune_all(store, PruneCutoffs(completed=CUTOFF))

    assert total(batches) == PruneCounts(events=1, deliveries=1)
    assert [e.id for e in (await store.list_events()).items] == [waiting.id]
    assert [d.event_id for d in (await store.list_deliveries()).items] == [waiting.id]


async def test_old_firings_go_but_each_schedules_newest_stays(store: Store) -> None:
    spec = ScheduleSpec("daily", WORKFLOW, "0 0 * * *", "UTC", None, Overlap.ALLOW, 60.0, OLD)
    await store.sync_schedules([spec], OLD)
    days = [OLD + timedelta(days=d) for d in range(4)]
    for day in days:
        await store.fire("daily", day, new_run(), day + timedelta(days=1), [], day)

    batches = await prune_all(store, PruneCutoffs(completed=NOW))

    assert total(batches).firings == 3
    assert [f.nominal_at for f in await store.list_firings("daily")] == [days[-1]]
    assert (await store.list_schedules())[0].next_fire_at == days[-1] + timedelta(days=1)
