"""A second subscriber of ``user.signed_up``: its own delivery, its own ``greet`` run."""

from __future__ import annotations

from workflows.greet import greet, record

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    record(handler="audit", event_id=args.event.id, phase="handler")
    await greet(args.container).run(input={"name": args.event.data["name"]})


config = SubscriberConfig(event="user.signed_up", subscriber_id="audit")
