"""A subscriber of ``user.signed_up`` that always fails (copied in by one test)."""

from __future__ import annotations

from workflows.greet import record

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    record(handler="always-fails", event_id=args.event.id, phase="handler")
    raise RuntimeError("the mail server is down")


config = SubscriberConfig(event="user.signed_up", subscriber_id="always-fails", max_attempts=2)
