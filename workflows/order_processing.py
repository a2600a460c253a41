"""Order processing: validate a paid order, reserve its stock, fulfil it and tell the customer.

Seed 002's event-driven order workflow, step for step: ``validate-order``,
``check-inventory``, then, when every item is in stock, ``reserve-inventory``,
``create-fulfillment`` and ``send-notification``. The seed marks that branch
"Conditional logic"; here it is a ``when``, so an order that cannot be fulfilled
completes with ``inventory_reserved: False`` and the items that are short,
instead of failing half-way.

If a step fails for good, the run rolls back in reverse: the fulfillment is
canceled, then the reservations are released. (The seed's fulfillment step has no
compensation; a fulfillment for an order whose processing was rolled back would
ship goods nobody reserved, so it gets one here.)

In the seed a subscriber starts this workflow on ``order.placed``; subscribers
come with the event bus. Until then, run it from code::

    result = await order_processing(container).run(
        input={"order_id": "order_1"}, transaction_id="order_1"
    )
"""

from __future__ import annotations

from typing import Any, TypedDict

from runtime import (
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
    transform,
    when,
)


class WorkflowInput(TypedDict):
    """Which order to process."""

    order_id: str


class OrderInput(TypedDict):
    """The input of the steps that work on a validated order."""

    order: dict[str, Any]


@create_step("validate-order")
async def validate_order(input: WorkflowInput, ctx: StepContext) -> StepResponse:
    """Load the order and refuse one that does not exist or is not paid."""
    orders = ctx.container.resolve("orders")
    order = await orders.retrieve_order(input["order_id"])
    # Raising fails the step; nothing ran before it, so nothing is rolled back.
    if order is None:
        raise ValueError("Order not found")
    if order["payment_status"] != "captured":
        raise ValueError("Payment not captured")
    return StepResponse({"order": order})


@create_step("check-inventory")
async def check_inventory(input: OrderInput, ctx: StepContext) -> StepResponse:
    """Find the items there are not enough units of."""
    inventory = ctx.container.resolve("inventory")
    insufficient_items = []
    for item in input["order"]["items"]:
        level = await inventory.get_inventory_level(item["variant"]["inventory_item_id"])
        # Compare with what is available, not what is stocked: reserved units are
        # already promised to other orders.
        if level["available_quantity"] < item["quantity"]:
            insufficient_items.append(
                {
                    "variant_id": item["variant_id"],
                    "requested": item["quantity"],
                    "available": level["available_quantity"],
                }
            )
    return StepResponse(
        {"can_fulfill": not insufficient_items, "insufficient_items": insufficient_items}
    )


@create_step("reserve-inventory")
async def reserve_inventory(input: OrderInput, ctx: StepContext) -> StepResponse:
    """Reserve every item of the order."""
    inventory = ctx.container.resolve("inventory")
    reservations: list[dict[str, Any]] = []
    for item in input["order"]["items"]:
        variant = item["variant"]
        try:
            reservation = await inventory.create_reservation(
                inventory_item_id=variant["inventory_item_id"],
                quantity=item["quantity"],
                location_id=None if variant["manage_inventory"] else "default_location",
            )
        except Exception as exc:
            # The reservations made before this one must not leak. A step that
            # raises hands its compensation None; a permanent failure hands it
            # what we pass here, so the compensation below releases them.
            return StepResponse.permanent_failure(
                f"{type(exc).__name__}: {exc}", compensate_input={"reservations": reservations}
            )
        reservations.append(reservation)
    return StepResponse({"reservations": reservations})


@reserve_inventory.compensate
async def release_inventory(input: dict[str, Any] | None, ctx: StepContext) -> None:
    """Release the reservations."""
    if input is None:
        return
    inventory = ctx.container.resolve("inventory")
    for reservation in input["reservations"]:
        await inventory.delete_reservation(reservation["id"])


@create_step("create-fulfillment")
async def create_fulfillment(input: OrderInput, ctx: StepContext) -> StepResponse:
    """Create the fulfillment (the shipment) of every item."""
    fulfillments = ctx.container.resolve("fulfillment")
    order = input["order"]
    fulfillment = await fulfillments.create_fulfillment(
        order["id"],
        items=[{"id": item["id"], "quantity": item["quantity"]} for item in order["items"]],
    )
    return StepResponse({"fulfillment": fulfillment}, compensate_input=fulfillment["id"])


@create_fulfillment.compensate
async def cancel_fulfillment(fulfillment_id: str | None, ctx: StepContext) -> None:
    """Cancel the fulfillment."""
    if fulfillment_id is None:
        return
    await ctx.container.resolve("fulfillment").cancel_fulfillment(fulfillment_id)


@create_step("send-notification")
async def send_notification(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    """E-mail the customer that the order is on its way.

    It is the last step on purpose: an e-mail cannot be taken back, so every step
    that may still fail runs before it.
    """
    email = ctx.container.resolve("email")
    await email.send_fulfillment_notification(
        order=input["order"], fulfillment=input["fulfillment"]
    )
    return StepResponse({"notification_sent": True})


def can_fulfill(values: dict[str, Any]) -> bool:
    """The condition of the fulfilment branch: every item is in stock."""
    return bool(values["inventory_check"]["can_fulfill"])


def summarize(values: dict[str, Any]) -> dict[str, Any]:
    """The workflow's result, for both branches."""
    fulfilled = values["fulfilled"]  # None when the branch did not run
    return {
        "order": values["order"],
        "fulfillment": fulfilled["fulfillment"] if fulfilled else None,
        "inventory_reserved": fulfilled is not None,
        "notification_sent": bool(fulfilled and fulfilled["notification_sent"]),
        "insufficient_items": values["inventory_check"]["insufficient_items"],
    }


def order_processing_flow(input: Any) -> WorkflowResponse:
    order = validate_order({"order_id": input["order_id"]})["order"]
    inventory_check = check_inventory({"order": order})

    def fulfill() -> dict[str, Any]:
        # The steps called in here run only when the condition holds.
        reserve_inventory({"order": order})
        fulfillment = create_fulfillment({"order": order})["fulfillment"]
        notification = send_notification({"order": order, "fulfillment": fulfillment})
        return {
            "fulfillment": fulfillment,
            "notification_sent": notification["notification_sent"],
        }

    fulfilled = when({"inventory_check": inventory_check}, can_fulfill).then(fulfill)
    summary = transform(
        {"order": order, "inventory_check": inventory_check, "fulfilled": fulfilled}, summarize
    )
    return WorkflowResponse(summary)


order_processing = create_workflow("order-processing", order_processing_flow)
