"""Event delivery through a real ``Runtime``: fan-out, retries, dead letters, delay, shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import structlog

from runtime.bus import encode_event
from runtime.models import DeliveryStatus
from runtime.sdk.specs import SubscriberArgs
from runtime.store.sqlite import SqliteStore
from tests.helpers.backends import opened, sqlite_only
from tests.helpers.definitions import Handler, running, sub
from tests.helpers.waiting import deliveries_of, events_named, wait_delivery, wait_until

pytestmark = pytest.mark.usefixtures("fast_retries")


# -- fan-out -----------------------------------------------------------------------


async def test_an_event_reaches_each_matching_subscriber_once(db_url: str) -> None:
    seen: dict[str, list[Any]] = {"orders": [], "placed": [], "users": []}

    def recorder(key: str) -> Handler:
        async def handler(args: SubscriberArgs) -> None:
            seen[key].append(args.event.data)

        return handler

    subscribers = [
        sub("orders", recorder("orders"), "order.*"),
        sub("placed", recorder("placed"), ["order.placed", "user.created"]),
        sub("users", recorder("users"), "user.*"),
    ]
    async with running(db_url, subscribers) as rt:
        event_id = await rt.emit("order.placed", {"id": "o1"})
        await wait_delivery(rt, event_id, "orders", [DeliveryStatus.DONE])
        await wait_delivery(rt, event_id, "placed", [DeliveryStatus.DONE])

        assert seen == {"orders": [{"id": "o1"}], "placed": [{"id": "o1"}], "users": []}
        rows = await deliveries_of(rt, event_id=event_id)
        assert sorted((d.subscriber_id, d.status, d.attempts) for d in rows) == [
            ("orders", DeliveryStatus.DONE, 1),
            ("placed", DeliveryStatus.DONE, 1),
        ]


async def test_an_event_with_no_subscriber_is_kept(db_url: str) -> None:
    async with running(db_url) as rt:
        event_id = await rt.emit("cart.expired", {"cart": "c1"}, metadata={"by": "cron"})
        (stored,) = await events_named(rt, "cart.expired")
        assert (stored.id, stored.data, stored.metadata) == (
            event_id,
            {"cart": "c1"},
            {"by": "cron"},
        )
        assert await deliveries_of(rt, event_id=event_id) == []


async def test_an_event_fanned_out_by_a_runtime_without_subscribers_reaches_another_runtimes(
    db_url: str,
) -> None:
    # A web app embeds a Runtime with no subscribers; `runtime start` runs the subscribers.
    got: list[Any] = []

    async def handler(args: SubscriberArgs) -> None:
        got.append(args.event.data)

    async with running(db_url) as web:
        event_id = await web.emit("customer.created", {"id": "c1"})
        # The web app's runtime delivers nothing itself, so it leaves fan-out to the
        # services: the event waits in the outbox, not fanned out to nobody (had it been,
        # the service below would find no delivery to make).
        async with anyio.create_task_group() as tg:
            assert await web.bus.dispatch(tg) is False
        async with running(db_url, [sub("welcome", handler, "customer.created")]) as service:
            await wait_delivery(service, event_id, "welcome", [DeliveryStatus.DONE])
    assert got == [{"id": "c1"}]


async def test_fan_out_routes_to_the_subscribers_a_service_declared(db_url: str) -> None:
    # The service declared its subscribers; a fan-out by any process routes to them,
    # even while the service is down (an old process in a rolling deploy, say).
    async def handler(args: SubscriberArgs) -> None:
        got.append(args.event.data)

    got: list[Any] = []
    async with running(db_url, [sub("welcome", handler, "customer.created")]):
        pass
    async with opened(db_url) as store:
        event_id, _ = await store.emit(
            encode_event(
                "customer.created",
                {"id": "c2"},
                metadata=None,
                delay=None,
                idempotency_key=None,
                now=datetime.now(UTC),
            )
        )
        assert await store.fan_out(datetime.now(UTC), 10) == 1
        page = await store.list_deliveries(event_id=event_id)
        assert [(d.subscriber_id, d.status) for d in page.items] == [
            ("welcome", DeliveryStatus.PENDING)
        ]
    async with running(db_url, [sub("welcome", handler, "customer.created")]) as service:
        await wait_delivery(service, event_id, "welcome", [DeliveryStatus.DONE])
    assert got == [{"id": "c2"}]


# -- retries, dead letters, redrive ------------------------------------------------


async def test_a_failing_subscriber_is_retried_then_dead_and_its_sibling_is_not_rerun(
    db_url: str,
) -> None:
    calls = {"flaky": 0, "steady": 0}
    heal = anyio.Event()

    async def flaky(args: SubscriberArgs) -> None:
        calls["flaky"] += 1
        if not heal.is_set():
            raise ValueError(f"smtp down (call {calls['flaky']})")

    async def steady(args: SubscriberArgs) -> None:
        calls["steady"] += 1

    subscribers = [
        sub("flaky", flaky, "order.placed", max_attempts=3),
        sub("steady", steady, "order.placed"),
    ]
    async with running(db_url, subscribers) as rt:
        event_id = await rt.emit("order.placed", {"id": "o1"})
        dead = await wait_delivery(rt, event_id, "flaky", [DeliveryStatus.DEAD])

        assert calls == {"flaky": 3, "steady": 1}
        assert dead.attempts == 3
        assert dead.max_attempts == 3
        assert dead.finished_at is not None
        assert dead.error is not None
        assert (dead.error.type, dead.error.message) == ("ValueError", "smtp down (call 3)")
        listed = await deliveries_of(rt, status=[DeliveryStatus.DEAD])
        assert [d.id for d in listed] == [dead.id]
        (done,) = await deliveries_of(rt, subscriber_id="steady")
        assert (done.status, done.attempts) == (DeliveryStatus.DONE, 1)

        # An operator redrives it from another process (the CLI); the service wakes.
        heal.set()
        async with opened(db_url) as cli:
            assert await cli.redrive([dead.id], datetime.now(UTC)) == 1
        redriven = await wait_delivery(rt, event_id, "flaky", [DeliveryStatus.DONE])

        assert redriven.id == dead.id
        assert redriven.attempts == 1
        assert calls == {"flaky": 4, "steady": 1}
        assert await deliveries_of(rt, status=[DeliveryStatus.DEAD]) == []


async def test_a_handler_past_its_timeout_is_a_failed_attempt(db_url: str) -> None:
    calls = 0

    async def slow(args: SubscriberArgs) -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    subscribers = [sub("slow", slow, "report.requested", timeout=0.05, max_attempts=2)]
    async with running(db_url, subscribers) as rt:
        event_id = await rt.emit("report.requested")
        dead = await wait_delivery(rt, event_id, "slow", [DeliveryStatus.DEAD])

    assert calls == 2
    assert dead.attempts == 2
    assert dead.error is not None
    assert dead.error.type == "HandlerTimeoutError"
    assert "0.05" in dead.error.message


# -- delay and idempotency -----------------------------------------------------------


async def test_a_delayed_event_is_not_delivered_before_its_time(db_url: str) -> None:
    received_at: list[datetime] = []

    async def handler(args: SubscriberArgs) -> None:
        received_at.append(rt.clock.now())  # due times are on the runtime's clock

    async with running(db_url, [sub("later", handler, "reminder.due")]) as rt:
        event_id = await rt.emit("reminder.due", {"n": 1}, delay=timedelta(milliseconds=300))
        (stored,) = await events_named(rt, "reminder.due")
        assert stored.available_at - stored.occurred_at == timedelta(milliseconds=300)
        await wait_delivery(rt, event_id, "later", [DeliveryStatus.DONE])

    assert len(received_at) == 1
    assert received_at[0] >= stored.available_at


async def test_emitting_twice_with_one_idempotency_key_delivers_once(db_url: str) -> None:
    got: list[Any] = []

    async def handler(args: SubscriberArgs) -> None:
        got.append(args.event.data)

    async with running(db_url, [sub("once", handler, "payment.captured")]) as rt:
        first = await rt.emit("payment.captured", {"n": 1}, idempotency_key="pay-1")
        second = await rt.emit("payment.captured", {"n": 2}, idempotency_key="pay-1")
        assert second == first
        await wait_delivery(rt, first, "once", [DeliveryStatus.DONE])
        other = await rt.emit("payment.captured", {"n": 3}, idempotency_key="pay-2")
        await wait_delivery(rt, other, "once", [DeliveryStatus.DONE])

        assert got == [{"n": 1}, {"n": 3}]
        assert [e.id for e in await events_named(rt, "payment.captured")] == [other, first]
        assert len(await deliveries_of(rt, subscriber_id="once")) == 2


# -- what a handler receives -------------------------------------------------------------


async def test_subscriber_args_carry_the_event_the_container_and_a_bound_logger(
    db_url: str,
) -> None:
    captured: list[SubscriberArgs] = []

    async def handler(args: SubscriberArgs) -> None:
        args.logger.info("handled", note="from a test")
        captured.append(args)

    async with running(db_url, [sub("inspector", handler, "order.*")]) as rt:
        # The runtime's clock, not the machine's: on PostgreSQL it keeps the server's time.
        before = rt.clock.now()
        event_id = await rt.emit(
            "order.placed", {"id": "o1", "total": 12.5}, metadata={"tenant": "acme"}
        )
        after = rt.clock.now()
        await wait_delivery(rt, event_id, "inspector", [DeliveryStatus.DONE])
        container = rt.container

    (args,) = captured
    event = args.event
    assert event.id == event_id
    assert event.name == "order.placed"
    assert event.data == {"id": "o1", "total": 12.5}
    assert event.metadata == {"tenant": "acme"}
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert before <= event.occurred_at <= after
    assert args.container is container
    context = structlog.get_context(args.logger)
    assert context["event_id"] == event_id
    assert context["subscriber"] == "inspector"


# -- shutdown and load ----------------------------------------------------------------------


async def test_a_delivery_cut_off_by_shutdown_is_delivered_by_the_next_runtime(
    db_url: str,
) -> None:
    entered = anyio.Event()
    calls: list[str] = []

    async def first_life(args: SubscriberArgs) -> None:
        calls.append("first")
        entered.set()
        await anyio.sleep_forever()

    async def second_life(args: SubscriberArgs) -> None:
        calls.append("second")

    async with running(db_url, [sub("mailer", first_life, "order.placed")]) as rt:
        event_id = await rt.emit("order.placed")
        with anyio.fail_after(5):
            await entered.wait()
    async with running(db_url, [sub("mailer", second_life, "order.placed")]) as rt:
        done = await wait_delivery(rt, event_id, "mailer", [DeliveryStatus.DONE])

    assert calls == ["first", "second"]
    # The attempt cut off by the shutdown is not counted: the redelivery is attempt 1.
    assert done.attempts == 1


async def test_drain_lets_a_running_handler_finish(db_url: str) -> None:
    gate = anyio.Event()
    entered = anyio.Event()

    async def handler(args: SubscriberArgs) -> None:
        entered.set()
        await gate.wait()

    async with running(db_url, [sub("mailer", handler, "order.placed")]) as rt:
        event_id = await rt.emit("order.placed")
        with anyio.fail_after(5):
            await entered.wait()
        drained: list[bool] = []

        async def drain() -> None:
            drained.append(await rt.drain(grace=5))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                gate.set()
        assert drained == [True]
        (done,) = await deliveries_of(rt, event_id=event_id)
        assert (done.status, done.attempts) == (DeliveryStatus.DONE, 1)


async def test_a_saturated_dispatcher_waits_for_a_free_slot_instead_of_polling(
    db_url: str,
) -> None:
    gate = anyio.Event()
    entered = anyio.Event()

    async def handler(args: SubscriberArgs) -> None:
        entered.set()
        await gate.wait()

    async with running(db_url, [sub("mailer", handler, "order.placed")]) as rt:
        rt.bus.concurrency = 1
        scans = 0
        next_delivery_at = rt.store.next_delivery_at

        async def counted(subscriber_ids: Sequence[str]) -> datetime | None:
            nonlocal scans
            scans += 1
            return await next_delivery_at(subscriber_ids)

        rt.store.next_delivery_at = counted  # type: ignore[method-assign]
        first = await rt.emit("order.placed", {"n": 1})
        with anyio.fail_after(5):
            await entered.wait()
        second = await rt.emit("order.placed", {"n": 2})  # due now, but no slot is free

        # A dispatcher that sleeps until a slot frees scans a handful of times at most;
        # one that spins scans thousands of times in this window.
        with anyio.move_on_after(0.3):
            while scans < 200:  # noqa: ASYNC110 - measuring, bounded by move_on_after
                await anyio.sleep(0.01)
        spun = scans
        gate.set()
        await wait_delivery(rt, first, "mailer", [DeliveryStatus.DONE])
        await wait_delivery(rt, second, "mailer", [DeliveryStatus.DONE])

    assert spun < 20


@sqlite_only  # counts the SQLite store's commits
async def test_outcomes_of_deliveries_that_finish_together_are_committed_together(
    db_url: str,
) -> None:
    """Before: each handler that finished recorded its outcome in a transaction of its
    own (20 handlers released at once, 20 commits); now the outcomes written in one
    turn of the loop share a transaction."""
    count = 20
    arrived: list[str] = []
    gate = anyio.Event()

    async def held(args: SubscriberArgs) -> None:
        arrived.append(args.event.id)
        await gate.wait()

    async with running(db_url, [sub("held", held, "order.placed")]) as rt:
        store = rt.store
        assert isinstance(store, SqliteStore)
        for i in range(count):
            await rt.emit("order.placed", {"i": i})

        async def all_arrived() -> bool:
            return len(arrived) == count

        await wait_until(all_arrived)
        before = store.commits
        gate.set()

        async def all_done() -> bool:
            done = await deliveries_of(rt, subscriber_id="held", status=[DeliveryStatus.DONE])
            return len(done) == count

        await wait_until(all_done)
        commits = store.commits - before
    assert commits <= 3, f"{count} outcomes took {commits} transactions"
