"""The PostgreSQL store's prune under other processes' writes: it decides again on locked rows.

SQLite's prune reads and deletes under its one writer lock; on PostgreSQL another
process may commit between a batch's walk and its deletes. Here that process acts at
exactly that moment (just before the batch's first delete, through a second store
with its own pool): an operator retries a failed run the walk found past
retention, or redrives the dead delivery that let an event go. Neither is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import pytest

from runtime.models import DeliveryStatus, RunStatus
from runtime.store import open_store
from runtime.store.base import Store
from runtime.store.pruning import PruneCounts, PruneCutoffs
from runtime.store.records import SubscriberRow
from tests.helpers.postgres import fresh_schema
from tests.store.bus import event
from tests.store.test_contract_retention import CUTOFF, NOW, OLD, ended, exists


@asynccontextmanager
async def two_stores() -> AsyncIterator[tuple[Store, Store]]:
    """Two stores (two processes, as far as each can tell) on one fresh schema."""
    async with fresh_schema() as url:
        pruner, operator = await open_store(url), await open_store(url)
        try:
            yield pruner, operator
        finally:
            await operator.close()
            await pruner.close()


@contextmanager
def before_statement(
    monkeypatch: pytest.MonkeyPatch, prefix: str, act: Callable[[], Awaitable[Any]]
) -> Iterator[list[str]]:
    """Run ``act`` once, just before the first statement that starts with ``prefix``."""
    done: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def traced(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if not done and str(query).startswith(prefix):
            done.append(str(query))
            await act()
        return await execute(self, query, params, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(psycopg.AsyncCursor, "execute", traced)
        yield done


async def test_a_run_retried_after_the_walk_read_it_is_not_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with two_stores() as (pruner, operator):
        run_id = await ended(pruner, RunStatus.FAILED, OLD, steps=2)

        async def retry() -> None:
            await operator.control_run(run_id, "retry", NOW)

        with before_statement(monkeypatch, "DELETE FROM runs", retry) as acted:
            batch = await pruner.prune(PruneCutoffs(completed=CUTOFF, failed=CUTOFF))

        assert acted  # the walk had found the run past retention
        assert batch.counts == PruneCounts()
        assert await exists(pruner, run_id)
        assert (await pruner.get_run(run_id, steps=False)).status is RunStatus.PENDING
        assert len(await pruner.load_steps(run_id)) == 2


async def test_an_event_whose_dead_delivery_is_redriven_after_the_walk_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with two_stores() as (pruner, operator):
        await pruner.sync_subscribers([SubscriberRow("audit", ("*",), 1)], OLD)
        await pruner.emit(event("a", at=OLD))
        await pruner.fan_out(OLD, 10)
        (work,) = await pruner.claim_deliveries("wrk_a", ["audit"], OLD, OLD, 10)
        await pruner.finish_delivery(work.id, "wrk_a", DeliveryStatus.DEAD, OLD)

        async def redrive() -> None:
            assert await operator.redrive([work.id], NOW) == 1

        prefix = "SELECT id FROM deliveries WHERE event_seq"
        with before_statement(monkeypatch, prefix, redrive) as acted:
            batch = await pruner.prune(PruneCutoffs(completed=CUTOFF, failed=CUTOFF))

        assert acted  # the walk had found the event past retention
        assert batch.counts == PruneCounts()
        (delivery,) = (await pruner.list_deliveries()).items
        assert delivery.id == work.id and delivery.status is DeliveryStatus.PENDING
