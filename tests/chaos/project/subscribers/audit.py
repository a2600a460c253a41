"""Every event (``*``), including the ``order.completed`` events completed sagas publish."""

from __future__ import annotations

from workflows._chaoslog import record

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    await record(kind="handler", subscriber="audit", event_id=args.event.id, phase="done")


config = SubscriberConfig(event="*", subscriber_id="audit")
