"""Greet every new user: runs the ``greet`` workflow for ``user.signed_up``."""

from __future__ import annotations

from workflows.greet import greet, record

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    record(handler="welcome", event_id=args.event.id, phase="handler")
    await greet(args.container).run(input={"name": args.event.data["name"]})


config = SubscriberConfig(event="user.signed_up", subscriber_id="welcome")
