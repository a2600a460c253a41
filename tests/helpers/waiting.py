"""Helpers for tests that run the example subscribers and jobs through a real ``Runtime``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import ModuleType

import anyio

from runtime import Job, Runtime, Subscriber
from runtime.models import DeliveryRecord, DeliveryStatus

WAIT = 5.0
"""Seconds any wait in these tests may take at most (they take milliseconds)."""

POLL = 0.005
"""Seconds between two looks at the store while waiting."""

QUIET_TIME = datetime(2026, 3, 10, 12, 7, 30, tzinfo=UTC)
"""A start for a ``ManualClock`` that is minutes away from any example job's firing."""


def subscriber_from(module: ModuleType) -> Subscriber:
    """The subscriber a module of ``subscribers/`` defines, as discovery builds it."""
    config = module.config
    subscriber_id = config.subscriber_id or module.__name__.rsplit(".", 1)[-1]
    return Subscriber(subscriber_id, module.handler, config, str(module.__file__))


def job_from(module: ModuleType) -> Job:
    """The job a module of ``jobs/`` defines, as discovery builds it."""
    return Job(module.handler, module.config, str(module.__file__))


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = WAIT
) -> None:
    """Poll ``condition`` every few milliseconds until it holds (``TimeoutError`` after)."""
    with anyio.fail_after(timeout):
        while True:
            outcome = condition()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            await anyio.sleep(POLL)


async def deliveries(rt: Runtime, event_id: str) -> dict[str, DeliveryRecord]:
    """The deliveries of one event, by subscriber id."""
    page = await rt.store.list_deliveries(event_id=event_id, limit=100)
    return {d.subscriber_id: d for d in page.items}


async def wait_delivered(rt: Runtime, event_id: str, subscriber_id: str) -> DeliveryRecord:
    """Wait until the event's delivery to the subscriber is finished (done or dead)."""
    finished = (DeliveryStatus.DONE, DeliveryStatus.DEAD)
    found: list[DeliveryRecord] = []

    async def finished_yet() -> bool:
        delivery = (await deliveries(rt, event_id)).get(subscriber_id)
        if delivery is not None and delivery.status in finished:
            found.append(delivery)
            return True
        return False

    await wait_until(finished_yet)
    return found[0]
