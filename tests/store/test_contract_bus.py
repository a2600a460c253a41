"""The store's event bus methods (outbox, fan-out, deliveries, redrive) on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from runtime.errors import StoreError
from runtime.ids import new_id
from runtime.models import DeliveryRecord, DeliveryStatus, StepError
from runtime.store.base import DeliveryWork, NewEvent, SubscriberRow, WorkerRow
from runtime.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=30)

# The subscribers a service declared: fan-out routes every event to the matching ones.
SUBSCRIBERS = [
    SubscriberRow("email", ("order.placed", "user.created"), 3),
    SubscriberRow("audit", ("order.*",), 5),
]


def event(
    name: str = "order.placed",
    data: object = None,
    *,
    key: str | None = None,
    at: datetime = T0,
    delay: float = 0.0,
    metadata: dict[str, object] | None = None,
) -> NewEvent:
    return NewEvent(
        id=new_id("evt"),
        name=name,
        data=json.dumps(data),
        metadata=json.dumps(metadata or {}),
        occurred_at=at,
        available_at=at + timedelta(seconds=delay),
        idempotency_key=key,
    )


def error_text(message: str, type: str = "RuntimeError") -> str:
    """An error as the bus stores it (a :class:`StepError`'s JSON)."""
    return StepError(step="email", type=type, message=message).model_dump_json()


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(str(db_path))
    await opened.sync_subscribers(SUBSCRIBERS, T0)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other(db_path: Path, store: SqliteStore) -> AsyncIterator[SqliteStore]:
    """A second connection to the same file (another process, as far as SQLite can tell)."""
    opened = await SqliteStore.open(str(db_path))
    try:
        yield opened
    finally:
        await opened.close()


async def add_worker(store: SqliteStore, worker_id: str, heartbeat: datetime = T0) -> None:
    await store.upsert_worker(WorkerRow(worker_id, "host-a", 4242, T0, heartbeat))


async def deliveries(store: SqliteStore, **filters: object) -> list[DeliveryRecord]:
    page = await store.list_deliveries(limit=1000, **filters)  # type: ignore[arg-type]
    return list(page.items)


async def emit_and_fan_out(store: SqliteStore, *events: NewEvent) -> list[str]:
    ids = [(await store.emit(e))[0] for e in events]
    await store.fan_out(T0, 100)
    return ids


async def claim(
    store: SqliteStore,
    owner: str,
    now: datetime = T0,
    subscribers: Sequence[str] = ("email", "audit"),
    limit: int = 100,
) -> list[DeliveryWork]:
    return await store.claim_deliveries(owner, list(subscribers), now, now - STALE, limit)


# -- emit ------------------------------------------------------------------------


async def test_emit_without_a_key_stores_every_event(store: SqliteStore) -> None:
    first = event(data={"n": 1})
    second = event(data={"n": 2})
    assert await store.emit(first) == (first.id, True)
    assert await store.emit(second) == (second.id, True)

    page = await store.list_events()
    assert [(e.id, e.data) for e in page.items] == [(second.id, {"n": 2}), (first.id, {"n": 1})]
    assert page.next_cursor is None


async def test_emit_with_a_used_key_returns_the_first_event_and_stores_nothing(
    store: SqliteStore,
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


# -- fan_out -----------------------------------------------------------------------


async def test_fan_out_creates_one_delivery_per_matching_subscriber(store: SqliteStore) -> None:
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


async def test_fan_out_twice_creates_nothing_more(store: SqliteStore) -> None:
    await store.emit(event("order.placed"))
    assert await store.fan_out(T0, 100) == 1
    assert await store.fan_out(T0, 100) == 0
    assert len(await deliveries(store)) == 2


async def test_fan_out_respects_its_limit_and_continues_where_it_stopped(
    store: SqliteStore,
) -> None:
    for _ in range(3):
        await store.emit(event("user.created"))
    assert await store.fan_out(T0, 2) == 2
    assert len(await deliveries(store)) == 2
    assert await store.fan_out(T0, 2) == 1
    assert len(await deliveries(store)) == 3


async def test_fan_out_from_two_connections_at_once_creates_each_delivery_once(
    store: SqliteStore, other: SqliteStore
) -> None:
    for _ in range(20):
        await store.emit(event("order.placed"))

    async def fan(s: SqliteStore) -> None:
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


# -- claim_deliveries ---------------------------------------------------------------


async def test_a_delayed_events_deliveries_are_not_claimable_before_due(
    store: SqliteStore,
) -> None:
    await emit_and_fan_out(store, event("user.created", delay=60))
    await add_worker(store, "w1", T0 + timedelta(seconds=61))

    assert await store.next_delivery_at(["email"]) == T0 + timedelta(seconds=60)
    assert await claim(store, "w1", T0) == []
    assert await claim(store, "w1", T0 + timedelta(seconds=59)) == []
    claimed = await claim(store, "w1", T0 + timedelta(seconds=60))
    assert [w.event.name for w in claimed] == ["user.created"]


async def test_claim_counts_the_attempt_and_hands_over_the_event(store: SqliteStore) -> None:
    (event_id,) = await emit_and_fan_out(
        store, event("user.created", {"id": "u1"}, metadata={"trace": "t-1"})
    )
    await add_worker(store, "w1")

    (work,) = await claim(store, "w1")
    assert work.subscriber_id == "email"
    assert work.attempt == 1
    assert work.max_attempts == 3
    assert work.event.id == event_id
    assert work.event.name == "user.created"
    assert work.event.data == {"id": "u1"}
    assert work.event.metadata == {"trace": "t-1"}
    assert work.event.occurred_at == T0

    (row,) = await deliveries(store)
    assert row.status is DeliveryStatus.RUNNING
    assert row.attempts == 1


async def test_claim_only_takes_the_given_subscribers(store: SqliteStore) -> None:
    await emit_and_fan_out(store, event("order.placed"))
    await add_worker(store, "w1")
    claimed = await claim(store, "w1", subscribers=["audit"])
    assert [w.subscriber_id for w in claimed] == ["audit"]
    assert await store.claim_deliveries("w1", [], T0, T0 - STALE, 10) == []


async def test_a_delivery_held_by_a_live_worker_is_not_claimed_again(store: SqliteStore) -> None:
    await emit_and_fan_out(store, event("user.created"))
    await add_worker(store, "w1")
    await add_worker(store, "w2")

    assert len(await claim(store, "w1")) == 1
    assert await claim(store, "w2") == []
    assert await claim(store, "w1") == []


async def test_two_connections_claiming_at_once_never_share_a_delivery(
    store: SqliteStore, other: SqliteStore
) -> None:
    await emit_and_fan_out(store, *[event("user.created") for _ in range(30)])
    await add_worker(store, "w1")
    await add_worker(store, "w2")
    got: dict[str, list[str]] = {"w1": [], "w2": []}

    async def take(s: SqliteStore, owner: str) -> None:
        for _ in range(10):
            got[owner] += [w.id for w in await claim(s, owner, limit=2)]

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take, store, "w1")
            tg.start_soon(take, other, "w2")

    everything = got["w1"] + got["w2"]
    assert len(everything) == 30
    assert len(set(everything)) == 30
    assert all(d.attempts == 1 for d in await deliveries(store))


async def test_a_running_delivery_of_a_stale_worker_is_taken_over(store: SqliteStore) -> None:
    await emit_and_fan_out(store, event("user.created"))
    await add_worker(store, "w1", T0)
    later = T0 + timedelta(seconds=60)
    await add_worker(store, "w2", later)

    assert len(await claim(store, "w1", T0)) == 1
    (work,) = await claim(store, "w2", later)
    # An attempt cut off by a dead holder does not count (as for steps): still attempt 1.
    assert work.attempt == 1
    # The old holder can no longer record an outcome.
    assert not await store.finish_delivery(work.id, "w1", DeliveryStatus.DONE, later)
    assert await store.finish_delivery(work.id, "w2", DeliveryStatus.DONE, later)


async def test_remove_workers_sends_their_running_deliveries_back_to_pending(
    store: SqliteStore,
) -> None:
    await emit_and_fan_out(store, event("order.placed"))
    await add_worker(store, "w1")
    await add_worker(store, "w2")
    (email,) = await claim(store, "w1", subscribers=["email"])
    (audit,) = await claim(store, "w2", subscribers=["audit"])

    await store.remove_workers(["w1"], T0)

    by_sub = {d.subscriber_id: d for d in await deliveries(store)}
    assert by_sub["email"].status is DeliveryStatus.PENDING
    assert by_sub["email"].attempts == 0  # the cut-off attempt is not counted
    assert by_sub["audit"].status is DeliveryStatus.RUNNING
    assert not await store.finish_delivery(email.id, "w1", DeliveryStatus.DONE, T0)
    (again,) = await claim(store, "w2")
    assert again.id == email.id
    assert await store.finish_delivery(audit.id, "w2", DeliveryStatus.DONE, T0)


# -- finish_delivery ---------------------------------------------------------------


async def test_finish_delivery_with_a_wrong_owner_changes_nothing(store: SqliteStore) -> None:
    await emit_and_fan_out(store, event("user.created"))
    await add_worker(store, "w1")
    (work,) = await claim(store, "w1")

    assert not await store.finish_delivery(work.id, "intruder", DeliveryStatus.DONE, T0)
    (row,) = await deliveries(store)
    assert row.status is DeliveryStatus.RUNNING
    assert row.finished_at is None

    done_at = T0 + timedelta(seconds=1)
    assert await store.finish_delivery(work.id, "w1", DeliveryStatus.DONE, done_at)
    (row,) = await deliveries(store)
    assert row.status is DeliveryStatus.DONE
    assert row.finished_at == done_at
    # Finished: nobody can finish it again.
    assert not await store.finish_delivery(work.id, "w1", DeliveryStatus.DEAD, done_at)


async def test_a_failed_attempt_goes_back_to_pending_with_its_error_and_due_time(
    store: SqliteStore,
) -> None:
    await emit_and_fan_out(store, event("user.created"))
    await add_worker(store, "w1", T0 + timedelta(seconds=10))
    (work,) = await claim(store, "w1")
    error = error_text("smtp down", "ValueError")
    retry_at = T0 + timedelta(seconds=5)

    assert await store.finish_delivery(
        work.id, "w1", DeliveryStatus.PENDING, T0, error=error, available_at=retry_at
    )
    (row,) = await deliveries(store)
    assert row.status is DeliveryStatus.PENDING
    assert row.attempts == 1
    assert row.available_at == retry_at
    assert row.finished_at is None
    assert row.error is not None
    assert (row.error.type, row.error.message) == ("ValueError", "smtp down")

    assert await claim(store, "w1", T0 + timedelta(seconds=4)) == []
    (again,) = await claim(store, "w1", retry_at)
    assert again.attempt == 2


# -- listing -------------------------------------------------------------------------


async def test_list_events_filters_by_name_and_pages_newest_first(store: SqliteStore) -> None:
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


async def test_list_events_refuses_a_bad_cursor_and_limit(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="cursor"):
        await store.list_events(cursor="not-a-cursor")
    with pytest.raises(StoreError, match="limit"):
        await store.list_events(limit=0)
    with pytest.raises(StoreError, match="limit"):
        await store.list_deliveries(limit=0)


async def test_list_deliveries_filters_and_pages(store: SqliteStore) -> None:
    placed, created, placed_again = await emit_and_fan_out(
        store, event("order.placed"), event("user.created"), event("order.placed")
    )
    await add_worker(store, "w1")
    (audit,) = await claim(store, "w1", subscribers=["audit"], limit=1)
    await store.finish_delivery(audit.id, "w1", DeliveryStatus.DEAD, T0, error=None)

    assert [d.id for d in await deliveries(store, status=[DeliveryStatus.DEAD])] == [audit.id]
    assert audit.event.id == placed
    assert len(await deliveries(store, status=[DeliveryStatus.PENDING])) == 4
    assert len(await deliveries(store, status=[DeliveryStatus.PENDING, DeliveryStatus.DEAD])) == 5
    assert {d.event_id for d in await deliveries(store, subscriber_id="email")} == {
        placed,
        created,
        placed_again,
    }
    assert [d.subscriber_id for d in await deliveries(store, event_id=created)] == ["email"]

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.list_deliveries(limit=2, cursor=cursor)
        assert len(page.items) <= 2
        seen += [d.id for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    everything = [d.id for d in await deliveries(store)]
    assert seen == everything
    assert len(set(seen)) == 5
    # Newest event first.
    assert [d.event_id for d in await deliveries(store)][:2] == [placed_again, placed_again]


# -- redrive ---------------------------------------------------------------------------


async def _dead(store: SqliteStore, count: int) -> list[str]:
    await emit_and_fan_out(store, *[event("user.created") for _ in range(count)])
    await add_worker(store, "w1", T0 + timedelta(hours=1))
    ids = []
    for work in await claim(store, "w1"):
        await store.finish_delivery(
            work.id, "w1", DeliveryStatus.DEAD, T0, error=error_text("boom")
        )
        ids.append(work.id)
    return ids


async def test_redrive_by_id_gives_those_dead_deliveries_fresh_attempts(
    store: SqliteStore,
) -> None:
    first, second, third = await _dead(store, 3)
    later = T0 + timedelta(minutes=5)

    assert await store.redrive([first, second], later) == 2
    by_id = {d.id: d for d in await deliveries(store)}
    for redriven in (first, second):
        assert by_id[redriven].status is DeliveryStatus.PENDING
        assert by_id[redriven].attempts == 0
        assert by_id[redriven].available_at == later
        assert by_id[redriven].finished_at is None
    assert by_id[third].status is DeliveryStatus.DEAD

    claimed = await claim(store, "w1", later)
    assert sorted(w.id for w in claimed) == sorted([first, second])
    assert all(w.attempt == 1 for w in claimed)
    # Only dead deliveries are redriven.
    assert await store.redrive([first], later) == 0
    assert await store.redrive([], later) == 0


async def test_redrive_all_takes_every_dead_delivery(store: SqliteStore) -> None:
    dead = await _dead(store, 3)
    assert await store.redrive(None, T0) == 3
    assert {d.id for d in await deliveries(store, status=[DeliveryStatus.PENDING])} == set(dead)
    assert await deliveries(store, status=[DeliveryStatus.DEAD]) == []
    assert await store.redrive(None, T0) == 0


# -- change_token ------------------------------------------------------------------------


async def test_change_token_changes_when_another_connection_commits(
    store: SqliteStore, other: SqliteStore
) -> None:
    before = await store.change_token()
    assert await store.change_token() == before
    await other.emit(event("user.created"))
    after = await store.change_token()
    assert after != before
    assert await store.change_token() == after
    await other.fan_out(T0, 100)
    assert await store.change_token() != after
