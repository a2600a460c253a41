"""Each ``user.signed_up`` event runs the durable saga (its input is the event's data)."""

from __future__ import annotations

from workflows._chaoslog import record
from workflows.durable_saga import chaos_durable

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    where = {"kind": "handler", "subscriber": "signups", "event_id": args.event.id}
    await record(**where, phase="start")
    result = await chaos_durable(args.container).run(input=args.event.data, throw_on_error=False)
    await record(**where, phase="done", run_id=result.run_id, status=result.status.value)


config = SubscriberConfig(event="user.signed_up", subscriber_id="signups")
