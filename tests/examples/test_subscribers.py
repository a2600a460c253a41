"""The example subscribers, run by a real ``Runtime``: emit an event, watch what it started."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import subscribers.customer_created
import subscribers.customer_registered
import subscribers.order_placed
from runtime import Container, RunStatus, Runtime
from runtime.models import DeliveryStatus
from tests.helpers.definitions import subscriber_from
from tests.helpers.waiting import wait_delivery
from workflows.customer_registration import customer_registration
from workflows.hello_world import hello_world_two_steps
from workflows.order_processing import order_processing

FORM = {
    "email": "ada@example.com",
    "password": "correct horse",
    "first_name": "Ada",
    "last_name": "Lovelace",
}


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    """A runtime delivering events to the example subscribers (no jobs)."""
    async with Runtime(
        database=db_url,
        workflows=[hello_world_two_steps, order_processing, customer_registration],
        subscribers=[
            subscriber_from(subscribers.customer_created),
            subscriber_from(subscribers.order_placed),
            subscriber_from(subscribers.customer_registered),
        ],
        container=container,
    ) as runtime:
        yield runtime


# -- customer.created -> hello world -------------------------------------------------


async def test_customer_created_greets_the_customer(rt: Runtime) -> None:
    event_id = await rt.emit("customer.created", {"id": "cus_9", "first_name": "Ada"})

    delivery = await wait_delivery(rt, event_id, "hello-customer")

    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DONE, 1)
    # The run got the transaction id derived from subscriber, event and workflow,
    # which is how a redelivered event finds it instead of starting another.
    run = await rt.store.find_run(
        "hello-world-two-steps", f"hello-customer:{event_id}:hello-world-two-steps"
    )
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    assert run.input == {"name": "Ada"}
    assert run.output == {"message": "Hello from step one!\nHello Ada from step two!"}


# -- order.placed -> order processing -------------------------------------------------


async def test_order_placed_processes_the_order(rt: Runtime) -> None:
    event_id = await rt.emit("order.placed", {"id": "order_1"})

    delivery = await wait_delivery(rt, event_id, "order-processing")

    assert delivery.status is DeliveryStatus.DONE
    run = await rt.store.find_run("order-processing", "order-processing:order_1")
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    assert run.output["inventory_reserved"] is True
    assert [f["order_id"] for f in rt.container.resolve("fulfillment").fulfillments.values()] == [
        "order_1"
    ]
    assert rt.container.resolve("inventory").reserved_quantity("iitem_shirt_m") == 2
    assert [m["template"] for m in rt.container.resolve("email").sent] == [
        "fulfillment-notification"
    ]


async def test_an_order_placed_twice_is_processed_once(rt: Runtime) -> None:
    first = await rt.emit("order.placed", {"id": "order_1"})
    await wait_delivery(rt, first, "order-processing")
    second = await rt.emit("order.placed", {"id": "order_1"})
    await wait_delivery(rt, second, "order-processing")

    page = await rt.workflows.list_runs(workflow="order-processing")
    assert [run.idempotency_key for run in page.runs] == ["order-processing:order_1"]
    assert len(rt.container.resolve("fulfillment").fulfillments) == 1
    assert len(rt.container.resolve("email").sent) == 1


async def test_an_unpaid_order_fails_its_run_but_not_the_delivery(rt: Runtime) -> None:
    event_id = await rt.emit("order.placed", {"id": "order_2"})

    delivery = await wait_delivery(rt, event_id, "order-processing")

    # Redelivering would only find the same failed run: the delivery is done, and
    # the failed run is where an operator looks (runtime runs list --status failed).
    assert (delivery.status, delivery.attempts, delivery.error) == (DeliveryStatus.DONE, 1, None)
    run = await rt.store.find_run("order-processing", "order-processing:order_2")
    assert run is not None
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error.step, run.error.message) == ("validate-order", "Payment not captured")
    assert rt.container.resolve("fulfillment").fulfillments == {}


# -- customer.registered -> customer registration ------------------------------------


async def test_customer_registered_registers_the_customer(rt: Runtime) -> None:
    customers = rt.container.resolve("customers")

    event_id = await rt.emit("customer.registered", FORM)
    delivery = await wait_delivery(rt, event_id, "customer-registration")

    assert delivery.status is DeliveryStatus.DONE
    run = await rt.store.find_run(
        "customer-registration", f"customer-registration:{event_id}:customer-registration"
    )
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    customer = await customers.retrieve_by_email("ada@example.com")
    assert customer is not None
    assert customer["groups"] == ["default_customers"]
    assert run.output["customer"]["id"] == customer["id"]
    assert rt.container.resolve("email").sent == [
        {"template": "welcome", "to": "ada@example.com", "data": {"customer_name": "Ada Lovelace"}}
    ]


async def test_a_taken_email_rolls_the_registration_back(rt: Runtime) -> None:
    event_id = await rt.emit("customer.registered", {**FORM, "email": "existing@example.com"})

    delivery = await wait_delivery(rt, event_id, "customer-registration")

    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DONE, 1)
    run = await rt.store.find_run(
        "customer-registration", f"customer-registration:{event_id}:customer-registration"
    )
    assert run is not None
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.message == "Customer with this email already exists"
    assert set(rt.container.resolve("customers").customers) == {"cus_existing"}
    assert rt.container.resolve("auth").auth_users == {}
    assert rt.container.resolve("email").sent == []
