"""Runs and events together: runs started by handlers (derived ids), events staged by runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    StepContext,
    WorkflowDefinition,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from runtime.models import DeliveryStatus
from runtime.sdk.specs import SubscriberArgs
from tests.helpers.backends import opened
from tests.helpers.definitions import running, sub
from tests.helpers.waiting import events_named, wait_delivery, wait_until

pytestmark = pytest.mark.usefixtures("fast_retries")


# -- runs started by handlers -----------------------------------------------------------


def greeting_workflow(calls: list[Any]) -> WorkflowDefinition:
    @create_step("greet")
    async def greet(input: dict[str, Any]) -> str:
        calls.append(input)
        return f"hello {input['name']}"

    return create_workflow("send-greeting", lambda input: WorkflowResponse(greet(input)))


async def test_a_redelivered_event_finds_the_run_its_handler_started(db_url: str) -> None:
    step_calls: list[Any] = []
    greeting = greeting_workflow(step_calls)
    seen: list[tuple[int, str, Any]] = []

    async def handler(args: SubscriberArgs) -> None:
        result = await greeting(args.container).run(input=args.event.data)
        seen.append((len(seen) + 1, result.run_id, result.result))
        if len(seen) == 1:
            raise ConnectionError("lost the ack after starting the run")

    subscribers = [sub("welcome", handler, "customer.created", max_attempts=2)]
    async with running(db_url, subscribers, [greeting]) as rt:
        event_id = await rt.emit("customer.created", {"name": "Ada"})
        done = await wait_delivery(rt, event_id, "welcome", [DeliveryStatus.DONE])

        assert done.attempts == 2
        assert len(seen) == 2
        assert seen[0][1] == seen[1][1]
        assert [r for _, _, r in seen] == ["hello Ada", "hello Ada"]
        assert step_calls == [{"name": "Ada"}]
        run = await rt.workflows.get_run(seen[0][1], steps=False)
        assert run.idempotency_key == f"welcome:{event_id}:send-greeting"
        assert run.status is RunStatus.COMPLETED
        assert len((await rt.workflows.list_runs(workflow="send-greeting")).runs) == 1


async def test_a_redriven_delivery_finds_the_run_its_handler_started(db_url: str) -> None:
    step_calls: list[Any] = []
    greeting = greeting_workflow(step_calls)
    run_ids: list[str] = []

    async def handler(args: SubscriberArgs) -> None:
        result = await greeting(args.container).run(input=args.event.data)
        run_ids.append(result.run_id)
        if len(run_ids) == 1:
            raise ConnectionError("downstream refused")

    subscribers = [sub("welcome", handler, "customer.created", max_attempts=1)]
    async with running(db_url, subscribers, [greeting]) as rt:
        event_id = await rt.emit("customer.created", {"name": "Grace"})
        dead = await wait_delivery(rt, event_id, "welcome", [DeliveryStatus.DEAD])
        async with opened(db_url) as cli:
            assert await cli.redrive(None, datetime.now(UTC)) == 1
        await wait_delivery(rt, event_id, "welcome", [DeliveryStatus.DONE])

    assert dead.attempts == 1
    assert len(run_ids) == 2
    assert run_ids[0] == run_ids[1]
    assert step_calls == [{"name": "Grace"}]


async def test_a_second_run_of_one_workflow_in_a_handler_gets_a_counter_suffix(
    db_url: str,
) -> None:
    greeting = greeting_workflow([])
    run_ids: list[str] = []

    async def handler(args: SubscriberArgs) -> None:
        for name in args.event.data["names"]:
            run_ids.append((await greeting(args.container).run(input={"name": name})).run_id)

    subscribers = [sub("greeter", handler, "team.joined")]
    async with running(db_url, subscribers, [greeting]) as rt:
        event_id = await rt.emit("team.joined", {"names": ["Ada", "Grace", "Linus"]})
        await wait_delivery(rt, event_id, "greeter", [DeliveryStatus.DONE])

        runs = [await rt.workflows.get_run(run_id, steps=False) for run_id in run_ids]
        prefix = f"greeter:{event_id}:send-greeting"
        assert [r.idempotency_key for r in runs] == [prefix, f"{prefix}:2", f"{prefix}:3"]
        assert [r.output for r in runs] == ["hello Ada", "hello Grace", "hello Linus"]
        assert len(set(run_ids)) == 3


async def test_a_run_with_an_explicit_transaction_id_keeps_it_in_a_handler(db_url: str) -> None:
    greeting = greeting_workflow([])
    run_ids: list[str] = []

    async def handler(args: SubscriberArgs) -> None:
        result = await greeting(args.container).run(input={"name": "Ada"}, transaction_id="mine")
        run_ids.append(result.run_id)

    async with running(db_url, [sub("greeter", handler, "team.joined")], [greeting]) as rt:
        event_id = await rt.emit("team.joined")
        await wait_delivery(rt, event_id, "greeter", [DeliveryStatus.DONE])
        run = await rt.workflows.get_run(run_ids[0], steps=False)
        assert run.idempotency_key == "mine"


# -- events staged by runs ------------------------------------------------------------


def checkout_workflow(gate: anyio.Event) -> WorkflowDefinition:
    @create_step("confirm")
    async def confirm(input: dict[str, Any], ctx: StepContext) -> str:
        ctx.emit("order.confirmed", {"id": input["id"]}, metadata={"source": "checkout"})
        return str(input["id"])

    @create_step("ship")
    async def ship(order_id: str) -> str:
        await gate.wait()
        return f"shipped {order_id}"

    return create_workflow("checkout", lambda input: WorkflowResponse(ship(confirm(input))))


async def test_events_staged_by_a_step_are_published_only_when_the_run_completes(
    db_url: str,
) -> None:
    gate = anyio.Event()
    checkout = checkout_workflow(gate)
    received: list[tuple[str, Any, dict[str, Any]]] = []

    async def handler(args: SubscriberArgs) -> None:
        received.append((args.event.name, args.event.data, args.event.metadata))

    subscribers = [sub("mailer", handler, "order.confirmed")]
    # The default scan interval: this test is about what is published, not how fast.
    async with running(db_url, subscribers, [checkout], interval=1.0) as rt:
        handle = await rt.workflows.run("checkout", {"id": "o7"})

        async def confirmed() -> bool:
            run = await rt.workflows.get_run(handle.run_id)
            return any(s.name == "confirm" and s.status == "completed" for s in run.steps)

        await wait_until(confirmed)
        assert await events_named(rt, "order.confirmed") == []

        gate.set()
        assert await handle.result(timeout=5) == "shipped o7"
        (published,) = await events_named(rt, "order.confirmed")
        assert published.source_run_id == handle.run_id
        await wait_delivery(rt, published.id, "mailer", [DeliveryStatus.DONE])

    assert received == [("order.confirmed", {"id": "o7"}, {"source": "checkout"})]


async def test_events_published_by_a_completed_run_wake_the_dispatcher_at_once(
    db_url: str,
) -> None:
    # As rt.emit does: an event committed in this process is dispatched without
    # waiting for the next scan (here 30 s away).
    gate = anyio.Event()
    gate.set()
    checkout = checkout_workflow(gate)
    received: list[Any] = []

    async def handler(args: SubscriberArgs) -> None:
        received.append(args.event.data)

    subscribers = [sub("mailer", handler, "order.confirmed")]
    async with running(db_url, subscribers, [checkout]) as rt:
        result = await checkout(rt.container).run(input={"id": "o9"})
        assert result.result == "shipped o9"
        (published,) = await events_named(rt, "order.confirmed")
        await wait_delivery(rt, published.id, "mailer", [DeliveryStatus.DONE])

    assert received == [{"id": "o9"}]


async def test_events_staged_by_a_run_that_fails_are_dropped(db_url: str) -> None:
    received: list[Any] = []

    @create_step("reserve")
    async def reserve(input: dict[str, Any], ctx: StepContext) -> str:
        ctx.emit("stock.reserved", {"id": input["id"]})
        return input["id"]

    @create_step("charge")
    async def charge(order_id: str, ctx: StepContext) -> None:
        ctx.emit("payment.charged", {"id": order_id})
        raise RuntimeError("card declined")

    purchase = create_workflow("purchase", lambda input: WorkflowResponse(charge(reserve(input))))

    async def handler(args: SubscriberArgs) -> None:
        received.append(args.event.name)

    subscribers = [sub("audit", handler, "*")]
    async with running(db_url, subscribers, [purchase]) as rt:
        result = await purchase(rt.container).run(input={"id": "o8"}, throw_on_error=False)
        assert result.status is RunStatus.FAILED
        # Something published after the failure is delivered; the staged events never are.
        marker = await rt.emit("audit.marker")
        await wait_delivery(rt, marker, "audit", [DeliveryStatus.DONE])

        assert await events_named(rt, "stock.reserved") == []
        assert await events_named(rt, "payment.charged") == []
        assert [e.name for e in (await rt.store.list_events()).items] == ["audit.marker"]
    assert received == ["audit.marker"]


async def test_a_background_run_started_in_a_handler_is_found_again_on_redelivery(
    db_url: str,
) -> None:
    step_calls: list[Any] = []
    greeting = greeting_workflow(step_calls)
    run_ids: list[str] = []

    async def handler(args: SubscriberArgs) -> None:
        handle = await args.container.resolve("workflows").run("send-greeting", args.event.data)
        run_ids.append(handle.run_id)
        if len(run_ids) == 1:
            raise ConnectionError("lost the ack")

    subscribers = [sub("welcome", handler, "customer.created", max_attempts=2)]
    async with running(db_url, subscribers, [greeting]) as rt:
        event_id = await rt.emit("customer.created", {"name": "Ada"})
        await wait_delivery(rt, event_id, "welcome", [DeliveryStatus.DONE])
        record = await rt.workflows.wait(run_ids[0], timeout=5)

    assert len(run_ids) == 2
    assert run_ids[0] == run_ids[1]
    assert record.idempotency_key == f"welcome:{event_id}:send-greeting"
    assert record.output == "hello Ada"
    assert step_calls == [{"name": "Ada"}]
