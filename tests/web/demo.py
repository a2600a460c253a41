"""A small project for the dashboard's tests and ``scripts/screenshots``: runs of every kind.

:func:`seed` leaves a database with a completed run, a failed saga whose compensations
ran, a durable run sleeping (so it can be paused), a run queued for later, a dead
delivery and a job: what an operator's dashboard shows on an ordinary day.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from runtime import (
    Job,
    JobConfig,
    RunStatus,
    Runtime,
    Subscriber,
    SubscriberArgs,
    SubscriberConfig,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)
from runtime.web.project import Project
from tests.helpers.waiting import wait_delivery, wait_status

LATER = 3600.0
"""A start delay that keeps a queued run pending for the whole test."""


async def _reserve(order: dict[str, Any]) -> dict[str, Any]:
    return {"reservation": f"r-{order['id']}", "items": order.get("items", 1)}


async def _release(reservation: dict[str, Any]) -> None:
    return None


async def _charge(order: dict[str, Any]) -> dict[str, Any]:
    return {"charge": f"ch-{order['id']}", "amount": order.get("amount", 10)}


async def _refund(charge: dict[str, Any]) -> None:
    return None


async def _ship(order: dict[str, Any]) -> str:
    if order.get("address") is None:
        raise ValueError(f"order {order['id']} has no shipping address")
    return f"shipped {order['id']}"


reserve = create_step("reserve_inventory", _reserve, compensate=_release)
charge = create_step("charge_card", _charge, compensate=_refund)
ship = create_step("ship_order", _ship)

place_order = create_workflow(
    "place_order",
    lambda order: WorkflowResponse([reserve(order), charge(order), ship(order)]),
)


@workflow(name="daily_report", version="v2")
async def daily_report(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    report = await ctx.step("generate_report", _report, ctx.input["date"])
    await ctx.sleep("cool_down", LATER)
    await ctx.step("send_report", _report, report)
    return {"success": True}


async def _report(value: Any) -> str:
    return f"report for {value}"


async def _welcome(args: SubscriberArgs) -> None:
    return None


async def _crm(args: SubscriberArgs) -> None:
    raise ConnectionError("crm.example.com refused the connection")


async def _cleanup(container: Any) -> None:
    return None


SUBSCRIBERS = [
    Subscriber("send-welcome", _welcome, SubscriberConfig(event="customer.created")),
    Subscriber(
        "sync-crm",
        _crm,
        SubscriberConfig(event="customer.*", subscriber_id="sync-crm", max_attempts=1),
    ),
]
JOBS = [Job(_cleanup, JobConfig(name="cleanup-carts", schedule="0 2 * * *"))]
WORKFLOWS = [place_order, daily_report]


def runtime(database: str, **options: Any) -> Runtime:
    """A runtime of the demo project on ``database`` (its worker drives the runs)."""
    return Runtime(database, workflows=WORKFLOWS, subscribers=SUBSCRIBERS, jobs=JOBS, **options)


@dataclasses.dataclass(frozen=True)
class Seeded:
    """The ids :func:`seed` made."""

    completed: str
    failed: str
    sleeping: str
    queued: str
    dead_delivery: str


def project(rt: Runtime) -> Project:
    """What the dashboard knows of the demo project: ``rt``'s definitions."""
    return Project(rt.registry, rt.schedules, rt.subscribers, rt.jobs)


async def seed(rt: Runtime) -> Seeded:
    """Runs, events and a dead delivery on ``rt``'s database (bounded waits)."""
    done = await rt.workflows.run(place_order, {"id": "o-1001", "address": "1 Main St"})
    failed = await rt.workflows.run(place_order, {"id": "o-1002", "amount": 42})
    sleeping = await rt.workflows.run(daily_report, {"date": "2026-11-21"})
    queued = await rt.workflows.run(place_order, {"id": "o-1003"}, delay=LATER)
    await wait_status(rt, done.run_id, RunStatus.COMPLETED)
    await wait_status(rt, failed.run_id, RunStatus.FAILED)
    await wait_status(rt, sleeping.run_id, RunStatus.SLEEPING)
    event_id = await rt.emit("customer.created", {"id": "c-7", "first_name": "Ada"})
    dead = await wait_delivery(rt, event_id, "sync-crm")
    await wait_delivery(rt, event_id, "send-welcome")
    return Seeded(done.run_id, failed.run_id, sleeping.run_id, queued.run_id, dead.id)
