"""Bus records for the contract tests: events, the subscribers they route to, claims."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from runtime.ids import new_id
from runtime.models import DeliveryRecord, DeliveryStatus, StepError
from runtime.store.base import Store
from runtime.store.records import DeliveryWork, NewEvent, SubscriberRow, WorkerRow
from tests.helpers.records import T0

STALE = timedelta(seconds=30)

SUBSCRIBERS = [
    SubscriberRow("email", ("order.placed", "user.created"), 3),
    SubscriberRow("audit", ("order.*",), 5),
]
"""The subscribers a service declared: fan-out routes every event to the matching ones."""


def event(
    name: str = "order.placed",
    data: object = None,
    *,
    key: str | None = None,
    at: datetime = T0,
    delay: float = 0.0,
    metadata: dict[str, object] | None = None,
) -> NewEvent:
    return NewEvent(
        id=new_id("evt"),
        name=name,
        data=json.dumps(data),
        metadata=json.dumps(metadata or {}),
        occurred_at=at,
        available_at=at + timedelta(seconds=delay),
        idempotency_key=key,
    )


def error_text(message: str, type: str = "RuntimeError") -> str:
    """An error as the bus stores it (a :class:`StepError`'s JSON)."""
    return StepError(step="email", type=type, message=message).model_dump_json()


async def add_worker(store: Store, worker_id: str, heartbeat: datetime = T0) -> None:
    await store.upsert_worker(WorkerRow(worker_id, "host-a", 4242, T0, heartbeat))


async def deliveries(store: Store, **filters: object) -> list[DeliveryRecord]:
    page = await store.list_deliveries(limit=1000, **filters)  # type: ignore[arg-type]
    return list(page.items)


async def emit_and_fan_out(store: Store, *events: NewEvent) -> list[str]:
    ids = [(await store.emit(e))[0] for e in events]
    await store.fan_out(T0, 100)
    return ids


async def claim(
    store: Store,
    owner: str,
    now: datetime = T0,
    subscribers: Sequence[str] = ("email", "audit"),
    limit: int = 100,
) -> list[DeliveryWork]:
    return await store.claim_deliveries(owner, list(subscribers), now, now - STALE, limit)


async def dead(store: Store, count: int) -> list[str]:
    """``count`` deliveries to ``email`` that went dead; their ids."""
    await emit_and_fan_out(store, *[event("user.created") for _ in range(count)])
    await add_worker(store, "w1", T0 + timedelta(hours=1))
    ids = []
    for work in await claim(store, "w1"):
        await store.finish_delivery(
            work.id, "w1", DeliveryStatus.DEAD, T0, error=error_text("boom")
        )
        ids.append(work.id)
    return ids
