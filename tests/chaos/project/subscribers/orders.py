"""Each ``order.placed`` event runs the composition saga (its input is the event's data)."""

from __future__ import annotations

from workflows._chaoslog import record
from workflows.saga import chaos_saga

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    where = {"kind": "handler", "subscriber": "orders", "event_id": args.event.id}
    await record(**where, phase="start")
    result = await chaos_saga(args.container).run(input=args.event.data, throw_on_error=False)
    await record(**where, phase="done", run_id=result.run_id, status=result.status.value)


config = SubscriberConfig(event="order.placed", subscriber_id="orders")
