"""The PostgreSQL store's bus under real concurrency: processes (pools) racing for the same rows.

Each store here has its own pool of connections, as two processes would: what keeps
them apart is PostgreSQL's row locks, never a lock in this process. Many tasks per
store make the races frequent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

import anyio
import psycopg
import pytest

from runtime.models import DeliveryRecord, DeliveryStatus
from runtime.store import open_store
from runtime.store.postgres import PostgresStore
from runtime.store.postgres.connection import connection_kwargs
from runtime.store.records import DeliveryWork
from tests.helpers.postgres import SERVER, fresh_schema
from tests.helpers.records import T0
from tests.store.bus import STALE, SUBSCRIBERS, event

pytestmark = pytest.mark.timeout(60)

TASKS = 4
"""Concurrent callers per store."""


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


@pytest.fixture
async def stores(url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one schema, each with its own pool: two processes."""
    first = await open_postgres(url)
    try:
        second = await open_postgres(url)
        try:
            await first.sync_subscribers(SUBSCRIBERS, T0)
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


async def open_postgres(url: str) -> PostgresStore:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    return store


def connect(url: str) -> Awaitable[psycopg.AsyncConnection[Any]]:
    """A connection of this test's own to the test schema, outside any store."""
    schema = url.rpartition("schema=")[2]
    return psycopg.AsyncConnection.connect(SERVER, **connection_kwargs(schema))


async def sql(url: str, statement: str, params: tuple[object, ...] = ()) -> None:
    """Run ``statement`` on the test schema outside any store (rows a test sets up)."""
    async with await connect(url) as conn:
        await conn.execute(statement, params)


async def add_workers(url: str, *worker_ids: str, heartbeat: object = T0) -> None:
    """Live workers (the claims' holders), written directly: only the bus is under test."""
    for worker_id in worker_ids:
        await sql(
            url,
            "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) "
            "VALUES (%s, 'host-a', 4242, %s, %s)",
            (worker_id, T0, heartbeat),
        )


async def deliveries(store: PostgresStore) -> list[DeliveryRecord]:
    return list((await store.list_deliveries(limit=1000)).items)


async def fan_out_all(store: PostgresStore) -> None:
    while await store.fan_out(T0, 500):
        pass


async def test_two_processes_claiming_at_once_never_get_the_same_delivery(
    url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    first, second = stores
    for _ in range(150):  # each order.placed goes to email and audit: 300 deliveries
        await first.emit(event("order.placed"))
    await fan_out_all(first)
    owners = [f"w{n}" for n in range(2 * TASKS)]
    await add_workers(url, *owners)
    claimed: dict[str, list[DeliveryWork]] = {owner: [] for owner in owners}

    async def take(store: PostgresStore, owner: str) -> None:
        while work := await store.claim_deliveries(owner, ["email", "audit"], T0, T0 - STALE, 7):
            claimed[owner] += work

    with anyio.fail_after(45):
        async with anyio.create_task_group() as tg:
            for n, owner in enumerate(owners):
                tg.start_soon(take, first if n % 2 else second, owner)

    counts = Counter(w.id for works in claimed.values() for w in works)
    assert len(counts) == 300
    assert [id for id, times in counts.items() if times > 1] == []
    # Both processes took part, and each claim is recorded as its taker's.
    assert sum(len(claimed[o]) for o in owners[0::2]) > 0
    assert sum(len(claimed[o]) for o in owners[1::2]) > 0
    rows = await deliveries(first)
    assert all(d.status is DeliveryStatus.RUNNING and d.attempts == 1 for d in rows)
    holder = {w.id: owner for owner, works in claimed.items() for w in works}
    for owner, works in claimed.items():
        for w in works:
            assert holder[w.id] == owner
            assert await first.finish_delivery(w.id, owner, DeliveryStatus.DONE, T0)


async def test_a_dead_holders_deliveries_are_taken_over_once_by_racing_processes(
    url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    first, second = stores
    for _ in range(60):
        await first.emit(event("user.created"))
    await fan_out_all(first)
    await add_workers(url, "dead", heartbeat=T0 - timedelta(hours=1))
    held = await first.claim_deliveries("dead", ["email"], T0, T0 - STALE, 1000)
    assert len(held) == 60
    owners = [f"w{n}" for n in range(2 * TASKS)]
    await add_workers(url, *owners)
    taken: list[str] = []

    async def take(store: PostgresStore, owner: str) -> None:
        while work := await store.claim_deliveries(owner, ["email"], T0, T0 - STALE, 5):
            taken.extend(w.id for w in work)
            # A takeover does not count the cut-off attempt.
            assert all(w.attempt == 1 for w in work)

    with anyio.fail_after(45):
        async with anyio.create_task_group() as tg:
            for n, owner in enumerate(owners):
                tg.start_soon(take, first if n % 2 else second, owner)

    assert sorted(taken) == sorted(w.id for w in held)
    # The dead holder can no longer record an outcome.
    assert not await first.finish_delivery(held[0].id, "dead", DeliveryStatus.DONE, T0)


async def test_concurrent_fan_outs_create_each_delivery_once(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = stores
    for _ in range(200):
        await first.emit(event("order.placed"))
    fanned: list[int] = []

    async def fan(store: PostgresStore) -> None:
        while n := await store.fan_out(T0, 9):
            fanned.append(n)

    with anyio.fail_after(45):
        async with anyio.create_task_group() as tg:
            for n in range(2 * TASKS):
                tg.start_soon(fan, first if n % 2 else second)

    # Each event was fanned out by exactly one call, and routed once per subscriber.
    assert sum(fanned) == 200
    rows = await deliveries(first)
    assert len(rows) == 400
    assert len({(d.event_id, d.subscriber_id) for d in rows}) == 400
    assert await first.fan_out(T0, 500) == 0


async def test_an_event_that_commits_after_a_later_one_is_still_fanned_out(
    url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    first, _ = stores
    async with await connect(url) as slow:
        # A transaction takes the next seq and stays open while a later event commits.
        async with slow.transaction():
            await slow.execute(
                "INSERT INTO events (id, name, occurred_at, available_at) "
                "VALUES ('evt_slow', 'user.created', %s, %s)",
                (T0, T0),
            )
            (later, _) = await first.emit(event("user.created"))
            assert await first.fan_out(T0, 100) == 1
        assert await first.fan_out(T0, 100) == 1

    events = {d.event_id for d in await deliveries(first)}
    assert events == {"evt_slow", later}


async def test_emit_fan_out_and_redrive_wake_another_process(
    url: str, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    first, second = stores
    # The first wait opens the listening connection; nothing has happened yet.
    token = await first.wait_change(await first.change_token(), 0.05)

    async def woken_by(action: object) -> None:
        nonlocal token
        with anyio.fail_after(10):
            moved = await first.wait_change(token, 10)
        assert moved != token, f"no wake-up after {action}"
        token = moved

    await second.emit(event("user.created"))
    await woken_by("emit")
    assert await second.fan_out(T0, 100) == 1
    await woken_by("fan_out")
    await add_workers(url, "w1")
    (work,) = await second.claim_deliveries("w1", ["email"], T0, T0 - STALE, 10)
    assert await second.finish_delivery(work.id, "w1", DeliveryStatus.DEAD, T0)
    assert await second.redrive(None, T0) == 1
    await woken_by("redrive")
