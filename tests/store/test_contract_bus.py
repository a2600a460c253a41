"""The Store contract, the bus: the outbox, fan-out, event listings, the change token."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from runtime.errors import StoreError
from runtime.models import DeliveryStatus
from runtime.store.base import Store
from runtime.store.records import SubscriberRow
from tests.helpers.records import T0, add_worker
from tests.store.bus import SUBSCRIBERS, deliveries, emit_and_fan_out, event


@pytest.fixture(autouse=True)
async def _subscribers(store: Store) -> None:
    await store.sync_subscribers(SUBSCRIBERS, T0)


# -- emit ------------------------------------------------------------------------


async def test_emit_without_a_key_stores_every_event(store: Store) -> None:
    first = event(data={"n": 1})
    second = event(data={"n": 2})
    assert await store.emit(first) == (first.id, True)
    assert await store.emit(second) == (second.id, True)

    page = await store.list_events()
    assert [(e.id, e.data) for e in page.items] == [(second.id, {"n": 2}), (first.id, {"n": 1})]
    assert page.next_cursor is None


async def test_emit_with_a_used_key_returns_the_first_event_and_stores_nothing(
    store: Store,
) -> None:
    first = event(data={"n": 1}, key="order-o1-placed", metadata={"by": "web"})
    second = event(data={"n": 2}, key="order-o1-placed")
    assert await store.emit(first) == (first.id, True)
    assert await store.emit(second) == (first.id, False)

    stored = (await store.list_events()).items
    assert len(stored) == 1
    assert stored[0].id == first.id
    assert stored[0].data == {"n": 1}
    assert stored[0].metadata == {"by": "web"}
    assert stored[0].idempotency_key == "order-o1-placed"
    assert stored[0].occurred_at == T0
    assert stored[0].available_at == T0


async def test_two_stores_emitting_with_one_key_store_one_event(store: Store, other: Store) -> None:
    ids: list[tuple[str, bool]] = []

    async def send(s: Store, n: int) -> None:
        ids.append(await s.emit(event(data={"n": n}, key="order-o1-placed")))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(send, store if n % 2 else other, n)

    assert sorted(stored for _, stored in ids) == [False] * 7 + [True]
    assert len({event_id for event_id, _ in ids}) == 1
    assert [e.id for e in (await store.list_events()).items] == [ids[0][0]]


# -- fan_out -----------------------------------------------------------------------


async def test_fan_out_creates_one_delivery_per_matching_subscriber(store: Store) -> None:
    placed, _, unrouted = await emit_and_fan_out(
        store, event("order.placed"), event("user.created"), event("cart.expired")
    )

    rows = await deliveries(store)
    assert sorted((d.event_name, d.subscriber_id, d.max_attempts) for d in rows) == [
        ("order.placed", "audit", 5),
        ("order.placed", "email", 3),
        ("user.created", "email", 3),
    ]
    assert all(d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in rows)
    assert {d.subscriber_id for d in await deliveries(store, event_id=placed)} == {
        "email",
        "audit",
    }
    # An event nobody subscribes to is kept (audit, replay), with no delivery.
    assert await deliveries(store, event_id=unrouted) == []
    assert unrouted in [e.id for e in (await store.list_events()).items]


async def test_fan_out_twice_creates_nothing_more(store: Store) -> None:
    await store.emit(event("order.placed"))
    assert await store.fan_out(T0, 100) == 1
    assert await store.fan_out(T0, 100) == 0
    assert len(await deliveries(store)) == 2


async def test_fan_out_respects_its_limit_and_continues_where_it_stopped(
    store: Store,
) -> None:
    for _ in range(3):
        await store.emit(event("user.created"))
    assert await store.fan_out(T0, 2) == 2
    assert len(await deliveries(store)) == 2
    assert await store.fan_out(T0, 2) == 1
    assert len(await deliveries(store)) == 3


async def test_fan_out_from_two_connections_at_once_creates_each_delivery_once(
    store: Store, other: Store
) -> None:
    for _ in range(20):
        await store.emit(event("order.placed"))

    async def fan(s: Store) -> None:
        for _ in range(5):
            await s.fan_out(T0, 3)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(fan, store)
            tg.start_soon(fan, other)
        while await store.fan_out(T0, 100):
            pass

    rows = await deliveries(store)
    assert len(rows) == 40
    assert len({(d.event_id, d.subscriber_id) for d in rows}) == 40


# -- listing -------------------------------------------------------------------------


async def test_list_events_filters_by_name_and_pages_newest_first(store: Store) -> None:
    ids = [(await store.emit(event("user.created", {"n": n})))[0] for n in range(5)]
    await store.emit(event("order.placed"))

    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await store.list_events(name="user.created", limit=2, cursor=cursor)
        pages.append([e.id for e in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]

    exact = await store.list_events(name="user.created", limit=5)
    assert len(exact.items) == 5
    assert exact.next_cursor is None
    assert len((await store.list_events()).items) == 6


async def test_list_events_refuses_a_bad_cursor_and_limit(store: Store) -> None:
    with pytest.raises(StoreError, match="cursor"):
        await store.list_events(cursor="not-a-cursor")
    with pytest.raises(StoreError, match="limit"):
        await store.list_events(limit=0)
    with pytest.raises(StoreError, match="limit"):
        await store.list_deliveries(limit=0)


# -- change_token ------------------------------------------------------------------------


async def test_change_token_changes_when_another_connection_commits(
    store: Store, other: Store
) -> None:
    before = await store.change_token()
    assert await store.change_token() == before
    await other.emit(event("user.created"))
    after = await store.change_token()
    assert after != before
    assert await store.change_token() == after
    await other.fan_out(T0, 100)
    assert await store.change_token() != after


# -- subscribers ---------------------------------------------------------------------------


async def test_sync_subscribers_declares_them_active_and_deactivates_the_others(
    store: Store,
) -> None:
    assert await store.list_subscribers() == [
        SubscriberRow("audit", ("order.*",), 5, True),
        SubscriberRow("email", ("order.placed", "user.created"), 3, True),
    ]

    changed = SubscriberRow("email", ("user.*",), 7)
    await store.sync_subscribers([changed], T0)

    assert await store.list_subscribers() == [
        SubscriberRow("audit", ("order.*",), 5, False),
        SubscriberRow("email", ("user.*",), 7, True),
    ]
    await store.sync_subscribers([], T0)
    assert [s.active for s in await store.list_subscribers()] == [False, False]


async def test_a_start_keeps_the_subscribers_another_live_worker_declares(store: Store) -> None:
    # A rolling deploy: the old version's worker declares audit and email, the new one
    # email only; audit stays active while the old worker beats.
    live_since = T0 - timedelta(seconds=30)
    await add_worker(store, "wrk_old", T0)
    await add_worker(store, "wrk_new", T0)
    email, audit = SUBSCRIBERS
    await store.sync_subscribers([audit, email], T0, "wrk_old", live_since)
    await store.sync_subscribers([email], T0, "wrk_new", live_since)
    assert [(s.id, s.active) for s in await store.list_subscribers()] == [
        ("audit", True),
        ("email", True),
    ]
    # The old worker's heartbeat goes stale: the new one's next declaration drops audit.
    later = T0 + timedelta(minutes=5)
    await store.heartbeat("wrk_new", later)
    await store.sync_subscribers([email], later, "wrk_new", later - timedelta(seconds=30))
    assert [(s.id, s.active) for s in await store.list_subscribers()] == [
        ("audit", False),
        ("email", True),
    ]
    # A worker that is gone (removed) no longer keeps anything active either.
    await store.sync_subscribers([audit, email], later, "wrk_old", live_since)
    await store.remove_workers(["wrk_old"], later)
    await store.sync_subscribers([email], later, "wrk_new", live_since)
    assert [(s.id, s.active) for s in await store.list_subscribers()] == [
        ("audit", False),
        ("email", True),
    ]


async def test_fan_out_routes_to_active_subscribers_only(store: Store) -> None:
    await store.sync_subscribers([SubscriberRow("audit", ("order.*",), 5)], T0)

    (placed,) = await emit_and_fan_out(store, event("order.placed"))

    assert [(d.subscriber_id, d.max_attempts) for d in await deliveries(store)] == [("audit", 5)]
    # Declared again later: events already fanned out are not routed to it afresh.
    await store.sync_subscribers(SUBSCRIBERS, T0)
    assert await store.fan_out(T0, 100) == 0
    assert [d.subscriber_id for d in await deliveries(store, event_id=placed)] == ["audit"]


async def test_wait_change_returns_when_another_process_commits(store: Store, other: Store) -> None:
    token = await store.change_token()
    # Nothing committed: the wait lasts its timeout and reports the same token.
    assert await store.wait_change(token, 0.05) == token
    async with anyio.create_task_group() as tg:
        started = time.monotonic()
        tg.start_soon(other.emit, event("user.created"))
        moved = await store.wait_change(token, 30)
    assert moved != token
    assert time.monotonic() - started < 10  # woken by the commit, not by the timeout
    # A token that already moved is answered at once.
    assert await store.wait_change(token, 30) == moved


async def test_database_time_is_the_servers_clock_or_none(store: Store) -> None:
    # SQLite has no clock but the host's (None); PostgreSQL's is aware and near this host's.
    server = await store.database_time()
    assert server is None or abs((server - datetime.now(UTC)).total_seconds()) < 60
