"""When an order is placed, process it: reserve stock, fulfil it, tell the customer (seed 002).

The event carries the order's id, as a web app would emit it right after checkout::

    from runtime import SyncClient
    client = SyncClient("sqlite:///runtime.db")
    client.emit("order.placed", {"id": order.id})

The handler runs the ``order-processing`` workflow (``workflows/order_processing.py``)
with a transaction id of its own choosing, ``order-processing:<order id>``. The
nightly safety net, ``jobs/process_pending_orders.py``, uses the same one, so an
order is processed once whichever of them gets there first, and an event emitted
twice for one order (a double click, a retried request) does not ship it twice.

A run that fails (an unpaid order, a service that is down) is rolled back and
stays ``failed`` in ``runtime runs list --status failed``, where an operator can
look at it and ``runtime runs retry`` it. Redelivering the event would only find
the same failed run, so the handler does not raise: the delivery is done.
"""

from __future__ import annotations

from runtime import RunStatus, SubscriberArgs, SubscriberConfig
from workflows.order_processing import order_processing


def transaction_id(order_id: str) -> str:
    """The transaction id every trigger uses to process an order (so it runs once)."""
    return f"order-processing:{order_id}"


async def handler(args: SubscriberArgs) -> None:
    """Process the order named by ``event.data["id"]``."""
    order_id = args.event.data["id"]
    result = await order_processing(args.container).run(
        input={"order_id": order_id},
        transaction_id=transaction_id(order_id),
        throw_on_error=False,
    )
    if result.status is RunStatus.COMPLETED:
        args.logger.info(
            "order_processed",
            order_id=order_id,
            run_id=result.run_id,
            inventory_reserved=result.result["inventory_reserved"],
        )
    else:
        errors = [f"{e.step}: {e.message}" for e in result.errors]
        args.logger.warning(
            "order_processing_failed", order_id=order_id, run_id=result.run_id, errors=errors
        )


config = SubscriberConfig(event="order.placed", subscriber_id="order-processing")
