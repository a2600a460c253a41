"""The order-processing workflow: reserve, fulfil, notify; roll back in reverse on failure."""

from __future__ import annotations

import pytest

from runtime import RunStatus, Runtime, StepFailed
from tests.examples.faults import fail_on
from workflows.order_processing import order_processing

ALL_STEPS = [
    "validate-order",
    "check-inventory",
    "reserve-inventory",
    "create-fulfillment",
    "send-notification",
]


async def test_processes_a_paid_order_in_stock(rt: Runtime) -> None:
    inventory = rt.container.resolve("inventory")
    fulfillment = rt.container.resolve("fulfillment")
    email = rt.container.resolve("email")

    result = await order_processing(rt.container).run(input={"order_id": "order_1"})

    assert result.status is RunStatus.COMPLETED
    summary = result.result
    assert summary["order"]["id"] == "order_1"
    assert summary["inventory_reserved"] is True
    assert summary["notification_sent"] is True
    assert summary["insufficient_items"] == []
    assert summary["fulfillment"] == {
        "id": "ful_1",
        "order_id": "order_1",
        "items": [{"id": "item_1", "quantity": 2}, {"id": "item_2", "quantity": 1}],
        "canceled": False,
    }
    assert inventory.reserved_quantity("iitem_shirt_m") == 2
    assert inventory.reserved_quantity("iitem_pants_l") == 1
    assert fulfillment.fulfillments["ful_1"]["canceled"] is False
    assert email.sent == [
        {
            "template": "fulfillment-notification",
            "to": "ada@example.com",
            "data": {"order_id": "order_1", "fulfillment_id": "ful_1"},
        }
    ]
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status) for s in run.steps] == [(n, "completed") for n in ALL_STEPS]


async def test_an_order_short_of_stock_completes_without_fulfilment(rt: Runtime) -> None:
    inventory = rt.container.resolve("inventory")
    inventory.stocked["iitem_pants_l"] = 0

    result = await order_processing(rt.container).run(input={"order_id": "order_1"})

    assert result.status is RunStatus.COMPLETED
    assert result.result["inventory_reserved"] is False
    assert result.result["notification_sent"] is False
    assert result.result["fulfillment"] is None
    assert result.result["insufficient_items"] == [
        {"variant_id": "variant_pants_l", "requested": 1, "available": 0}
    ]
    assert inventory.reservations == {}
    assert rt.container.resolve("email").sent == []
    run = await rt.workflows.get_run(result.run_id)
    # The steps inside the `when` branch never ran, so they left no record.
    assert [s.name for s in run.steps] == ["validate-order", "check-inventory"]


async def test_units_reserved_by_another_order_are_not_available(rt: Runtime) -> None:
    inventory = rt.container.resolve("inventory")
    await inventory.create_reservation(inventory_item_id="iitem_pants_l", quantity=1)

    result = await order_processing(rt.container).run(input={"order_id": "order_1"})

    assert result.result["insufficient_items"] == [
        {"variant_id": "variant_pants_l", "requested": 1, "available": 0}
    ]


@pytest.mark.parametrize(
    ("order_id", "message"),
    [("order_404", "Order not found"), ("order_2", "Payment not captured")],
)
async def test_refuses_an_order_that_is_missing_or_unpaid(
    rt: Runtime, order_id: str, message: str
) -> None:
    with pytest.raises(StepFailed) as caught:
        await order_processing(rt.container).run(input={"order_id": order_id})

    assert (caught.value.step, caught.value.error_type, caught.value.message) == (
        "validate-order",
        "ValueError",
        message,
    )
    assert rt.container.resolve("journal").entries == []


async def test_a_failed_notification_cancels_the_fulfillment_then_releases_stock(
    rt: Runtime,
) -> None:
    inventory = rt.container.resolve("inventory")
    fulfillment = rt.container.resolve("fulfillment")
    journal = rt.container.resolve("journal")
    fail_on(rt.container.resolve("email"), "send_fulfillment_notification")

    result = await order_processing(rt.container).run(
        input={"order_id": "order_1"}, throw_on_error=False
    )

    assert result.status is RunStatus.FAILED
    assert result.result is None
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("send-notification", "ServiceError", "email.send_fulfillment_notification is unavailable")
    ]
    assert inventory.reservations == {}
    assert fulfillment.fulfillments["ful_1"]["canceled"] is True
    assert journal.entries == [
        "inventory.create_reservation res_1",
        "inventory.create_reservation res_2",
        "fulfillment.create_fulfillment ful_1",
        # The rollback, in reverse order of the steps.
        "fulfillment.cancel_fulfillment ful_1",
        "inventory.delete_reservation res_1",
        "inventory.delete_reservation res_2",
    ]
    run = await rt.workflows.get_run(result.run_id)
    assert run.status is RunStatus.FAILED
    assert [(s.name, s.status) for s in run.steps] == [
        ("validate-order", "completed"),
        ("check-inventory", "completed"),
        ("reserve-inventory", "compensated"),
        ("create-fulfillment", "compensated"),
        ("send-notification", "failed"),
    ]


async def test_a_reservation_failing_half_way_releases_the_ones_made(rt: Runtime) -> None:
    inventory = rt.container.resolve("inventory")
    fail_on(inventory, "create_reservation", after=1)

    with pytest.raises(StepFailed) as caught:
        await order_processing(rt.container).run(input={"order_id": "order_1"})

    assert caught.value.step == "reserve-inventory"
    assert caught.value.error_type == "PermanentFailure"
    assert caught.value.message == "ServiceError: inventory.create_reservation is unavailable"
    assert inventory.reservations == {}
    assert rt.container.resolve("journal").entries == [
        "inventory.create_reservation res_1",
        "inventory.delete_reservation res_1",
    ]
    assert rt.container.resolve("fulfillment").fulfillments == {}


async def test_a_second_run_with_the_same_transaction_id_does_nothing_twice(
    rt: Runtime,
) -> None:
    first = await order_processing(rt.container).run(
        input={"order_id": "order_1"}, transaction_id="order_1"
    )
    second = await order_processing(rt.container).run(
        input={"order_id": "order_1"}, transaction_id="order_1"
    )

    assert second.run_id == first.run_id
    assert second.result == first.result
    assert len(rt.container.resolve("inventory").reservations) == 2
    assert len(rt.container.resolve("email").sent) == 1
