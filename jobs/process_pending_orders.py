"""Every 15 minutes, process the paid orders that have not been fulfilled yet (seed 002).

``subscribers/order_placed.py`` processes an order as soon as it is placed; this
job is the safety net for orders whose event came before the subscriber was
deployed, or whose handler never got to run. Both run the ``order-processing``
workflow (``workflows/order_processing.py``) with the same transaction id,
``order-processing:<order id>``, so an order is processed once, whichever of
them gets there first, and an order already handled only costs a lookup.

What happens to each pending order, as in the seed:

- every item in stock: reserved, fulfilled, and the customer is told;
- not enough stock: the admins get an alert (once per order, however many
  firings see the order still pending);
- the run failed (a service was down): it was rolled back and waits in
  ``runtime runs list --status failed`` for ``runtime runs retry``; the job goes
  on with the other orders.
"""

from __future__ import annotations

from runtime import Container, JobConfig, RunStatus
from subscribers.order_placed import transaction_id
from workflows.order_processing import order_processing


async def handler(container: Container) -> None:
    """Run order processing for every captured order that has no fulfillment."""
    logger = container.resolve("logger")
    orders = container.resolve("orders")
    fulfillments = container.resolve("fulfillment")
    notifications = container.resolve("notifications")

    paid = await orders.list_orders(payment_status="captured")
    fulfilled = {f["order_id"] for f in await fulfillments.list_fulfillments()}
    pending = [order for order in paid if order["id"] not in fulfilled]

    for order in pending:
        result = await order_processing(container).run(
            input={"order_id": order["id"]},
            transaction_id=transaction_id(order["id"]),
            throw_on_error=False,
        )
        if result.status is not RunStatus.COMPLETED:
            errors = [f"{e.step}: {e.message}" for e in result.errors]
            logger.warning("order_processing_failed", order_id=order["id"], errors=errors)
        elif result.result["inventory_reserved"]:
            logger.info("order_fulfilled", order_id=order["id"], display_id=order["display_id"])
        else:
            await notifications.send_alert(
                "insufficient_inventory",
                f"order {order['display_id']} cannot be fulfilled: insufficient inventory",
                severity="medium",
                details={
                    "order_id": order["id"],
                    "display_id": order["display_id"],
                    "insufficient_items": result.result["insufficient_items"],
                },
                idempotency_key=f"insufficient-inventory:{order['id']}",
            )
    logger.info("pending_orders_processed", count=len(pending))


config = JobConfig(name="process-pending-orders", schedule="*/15 * * * *")
