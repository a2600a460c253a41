"""Each ``order.placed`` event runs ``fulfil`` once: its transaction id is the event's id."""

from __future__ import annotations

from workflows.fulfil import fulfil

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    await fulfil(args.container).run(input=args.event.data, transaction_id=args.event.id)


config = SubscriberConfig(event="order.placed", subscriber_id="orders")
