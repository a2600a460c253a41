"""The Store contract, deliveries: claims, outcomes, listings and redrives of dead ones."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from runtime.errors import DeliveryNotFoundError
from runtime.models import DeliveryStatus
from runtime.store.base import Store
from tests.helpers.records import T0
from tests.store.bus import (
    STALE,
    SUBSCRIBERS,
    add_worker,
    claim,
    dead,
    deliveries,
    emit_and_fan_out,
    error_text,
    event,
)


@pytest.fixture(autouse=True)
async def _subscribers(store: Store) -> None:
    await store.sync_subscribers(SUBSCRIBERS, T0)


# -- claim_deliveries ---------------------------------------------------------------


async def test_a_delayed_events_deliveries_are_not_claimable_before_due(
    store: Store,
) -> None:
    await emit_and_fan_out(store, event("user.created", delay=60))
    await add_worker(store, "w1", T0 + timedelta(seconds=61))

    assert await store.next_delivery_at(["email"]) == T0 + timedelta(seconds=60)
    assert await claim(store, "w1", T0) == []
    assert await claim(store, "w1", T0 + timedelta(seconds=59)) == []
    claimed = await claim(store, "w1", T0 + timedelta(seconds=60))
    assert [w.event.name for w in claimed] == ["user.created"]


async def test_claim_counts_the_attempt_and_hands_over_the_event(store: Store) -> None:
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


async def test_claim_only_takes_the_given_subscribers(store: Store) -> None:
    await emit_and_fan_out(store, event("order.placed"))
    await add_worker(store, "w1")
    claimed = await claim(store, "w1", subscribers=["audit"])
    assert [w.subscriber_id for w in claimed] == ["audit"]
    assert await store.claim_deliveries("w1", [], T0, T0 - STALE, 10) == []


async def test_a_delivery_held_by_a_live_worker_is_not_claimed_again(store: Store) -> None:
    await emit_and_fan_out(store, event("user.created"))
    await add_worker(store, "w1")
    await add_worker(store, "w2")

    assert len(await claim(store, "w1")) == 1
    assert await claim(store, "w2") == []
    assert await claim(store, "w1") == []


async def test_two_connections_claiming_at_once_never_share_a_delivery(
    store: Store, other: Store
) -> None:
    await emit_and_fan_out(store, *[event("user.created") for _ in range(30)])
    await add_worker(store, "w1")
    await add_worker(store, "w2")
    got: dict[str, list[str]] = {"w1": [], "w2": []}

    async def take(s: Store, owner: str) -> None:
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


async def test_a_running_delivery_of_a_stale_worker_is_taken_over(store: Store) -> None:
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
    store: Store,
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


async def test_finish_delivery_with_a_wrong_owner_changes_nothing(store: Store) -> None:
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
    store: Store,
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


# -- list_deliveries ---------------------------------------------------------------------


async def test_list_deliveries_filters_and_pages(store: Store) -> None:
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


async def test_redrive_by_id_gives_those_dead_deliveries_fresh_attempts(
    store: Store,
) -> None:
    first, second, third = await dead(store, 3)
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


async def test_get_delivery_reads_one_delivery_and_names_an_unknown_id(store: Store) -> None:
    (one,) = await dead(store, 1)
    record = await store.get_delivery(one)
    assert record.id == one and record.status is DeliveryStatus.DEAD
    assert record == {d.id: d for d in await deliveries(store)}[one]
    with pytest.raises(DeliveryNotFoundError, match="dlv_nope"):
        await store.get_delivery("dlv_nope")


async def test_deliveries_of_events_reads_every_delivery_of_a_page_of_events(
    store: Store,
) -> None:
    # order.placed goes to both subscribers: two deliveries per event.
    ids = await emit_and_fan_out(store, event("order.placed"), event("order.placed"))
    await emit_and_fan_out(store, event("order.placed"))  # not asked for
    page = await store.list_events(limit=10)
    seqs = {e.id: e.seq for e in page.items}
    found = await store.deliveries_of_events([seqs[i] for i in ids])
    assert len(found) == 4
    assert sorted((d.event_id, d.subscriber_id) for d in found) == sorted(
        (i, s) for i in ids for s in ("audit", "email")
    )
    # The same deliveries, in the same order, as one listing per event, newest first.
    one_by_one = []
    for event_id in sorted(ids, key=lambda i: seqs[i], reverse=True):
        one_by_one += (await store.list_deliveries(event_id=event_id, limit=100)).items
    assert found == one_by_one
    assert await store.deliveries_of_events([]) == []


async def test_redrive_all_takes_every_dead_delivery(store: Store) -> None:
    ids = await dead(store, 3)
    assert await store.redrive(None, T0) == 3
    assert {d.id for d in await deliveries(store, status=[DeliveryStatus.PENDING])} == set(ids)
    assert await deliveries(store, status=[DeliveryStatus.DEAD]) == []
    assert await store.redrive(None, T0) == 0


# -- count_deliveries (GET /metrics) -----------------------------------------------


async def test_count_deliveries_counts_each_status(store: Store) -> None:
    assert await store.count_deliveries() == dict.fromkeys(DeliveryStatus, 0)
    await dead(store, 2)  # two to email, dead
    await emit_and_fan_out(store, event("order.placed"))  # one to email, one to audit
    await add_worker(store, "w2", T0 + timedelta(hours=1))
    (work,) = await claim(store, "w2", subscribers=["audit"])
    assert await store.finish_delivery(work.id, "w2", DeliveryStatus.DONE, T0)
    await claim(store, "w2", subscribers=["email"])

    assert await store.count_deliveries() == {
        DeliveryStatus.PENDING: 0,
        DeliveryStatus.RUNNING: 1,
        DeliveryStatus.DONE: 1,
        DeliveryStatus.DEAD: 2,
    }
    await store.redrive(None, T0)
    counts = await store.count_deliveries()
    assert (counts[DeliveryStatus.PENDING], counts[DeliveryStatus.DEAD]) == (2, 0)
