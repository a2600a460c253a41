"""The example jobs, run by a real ``Runtime``: each firing is a run of ``job-<name>``.

A test fires a job the way the scheduler does, by running its workflow
(``rt.registry.get("job-<name>")``), and checks what the handler changed. The
runtime's clock is a ``ManualClock`` parked minutes away from any cron firing, so
the scheduler never fires a job behind a test's back, and the retry waits of
``sync-inventory`` pass when the test moves the clock, not on the wall clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

import jobs.cleanup_expired_carts
import jobs.collect_analytics
import jobs.message_daily
import jobs.process_pending_orders
import jobs.sync_brands_from_cms
import jobs.sync_inventory
import subscribers.job_failed
import subscribers.order_placed
from jobs.collect_analytics import daily_metrics
from runtime import Container, RunStatus, Runtime, WorkflowResult
from runtime.models import DeliveryStatus
from runtime.testing import ManualClock
from tests.examples.faults import fail_on
from tests.helpers.definitions import QUIET_TIME, job_from, subscriber_from
from tests.helpers.waiting import wait_delivery, wait_until
from workflows.hello_world import hello_world_two_steps
from workflows.order_processing import order_processing
from workflows.sync_brands_from_cms import sync_brands_from_cms

JOB_MODULES = [
    jobs.cleanup_expired_carts,
    jobs.collect_analytics,
    jobs.message_daily,
    jobs.process_pending_orders,
    jobs.sync_brands_from_cms,
    jobs.sync_inventory,
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(QUIET_TIME)


@pytest.fixture
async def rt(db_url: str, container: Container, clock: ManualClock) -> AsyncIterator[Runtime]:
    """A runtime with every example job, and the subscribers the jobs work with."""
    async with Runtime(
        database=db_url,
        workflows=[hello_world_two_steps, order_processing, sync_brands_from_cms],
        subscribers=[
            subscriber_from(subscribers.job_failed),
            subscriber_from(subscribers.order_placed),
        ],
        jobs=[job_from(module) for module in JOB_MODULES],
        container=container,
        clock=clock,
    ) as runtime:
        yield runtime


async def fire(rt: Runtime, job: str) -> WorkflowResult:
    """Run one firing of a job, as the scheduler would start it, and wait for its end."""
    workflow = rt.registry.get(f"job-{job}")
    result: WorkflowResult = await workflow(rt.container).run(throw_on_error=False)
    return result


async def job_failed_events(rt: Runtime) -> list[Any]:
    """The ``job.failed`` events stored so far."""
    page = await rt.store.list_events(name="job.failed")
    return page.items


# -- the configs are the seeds' ------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "schedule"),
    [
        (jobs.message_daily, "run-once-a-day", "0 0 * * *"),  # seed 000
        (jobs.cleanup_expired_carts, "cleanup-expired-carts", "0 2 * * *"),  # seed 002
        (jobs.sync_inventory, "sync-inventory", "0 */6 * * *"),  # seed 002
        (jobs.process_pending_orders, "process-pending-orders", "*/15 * * * *"),  # seed 002
        (jobs.collect_analytics, "collect-analytics-data", "0 1 * * *"),  # seed 002
        (jobs.sync_brands_from_cms, "sync-brands-from-system", "0 0 * * *"),  # seed 004
    ],
)
def test_each_job_has_the_name_and_schedule_of_its_seed(
    module: Any, name: str, schedule: str
) -> None:
    assert (module.config.name, module.config.schedule) == (name, schedule)


async def test_the_scheduler_plans_every_job(rt: Runtime) -> None:
    schedules = {s.name: s for s in await rt.store.list_schedules()}

    assert set(schedules) == {module.config.name for module in JOB_MODULES}
    # Planned from the runtime's clock: 12:07:30, so */15 fires next at 12:15.
    assert schedules["process-pending-orders"].next_fire_at == datetime(
        2026, 3, 10, 12, 15, tzinfo=UTC
    )
    assert schedules["sync-inventory"].next_fire_at == datetime(2026, 3, 10, 18, tzinfo=UTC)
    assert schedules["cleanup-expired-carts"].next_fire_at == datetime(2026, 3, 11, 2, tzinfo=UTC)


# -- run-once-a-day (seed 000) ---------------------------------------------------------


async def test_run_once_a_day_runs_hello_world(rt: Runtime) -> None:
    result = await fire(rt, "run-once-a-day")

    assert result.status is RunStatus.COMPLETED
    # A run started in a job's handler gets a transaction id derived from the job's run.
    run = await rt.store.find_run(
        "hello-world-two-steps", f"{result.run_id}:job:hello-world-two-steps"
    )
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"message": "Hello from step one!\nHello John from step two!"}


# -- cleanup-expired-carts (seed 002) --------------------------------------------------


def _carts(container: Container) -> Any:
    """Replace the demo carts with four of known ages; returns the cart service."""
    now = datetime.now(UTC)
    carts = container.resolve("carts")
    # (id, days since created, days since completed or None)
    ages = [
        ("cart_old", 8, None),
        ("cart_older", 30, None),
        ("cart_new", 1, None),
        ("cart_bought", 30, 29),
    ]
    carts.carts = {
        id: {
            "id": id,
            "created_at": now - timedelta(days=created),
            "completed_at": None if completed is None else now - timedelta(days=completed),
        }
        for id, created, completed in ages
    }
    return carts


async def test_cleanup_deletes_carts_left_for_a_week(rt: Runtime) -> None:
    carts = _carts(rt.container)

    result = await fire(rt, "cleanup-expired-carts")

    assert result.status is RunStatus.COMPLETED
    assert set(carts.carts) == {"cart_new", "cart_bought"}
    events = (await rt.store.list_events(name="cart.expired")).items
    assert sorted(e.data["cart_id"] for e in events) == ["cart_old", "cart_older"]


async def test_cleanup_cut_short_finishes_next_time_without_a_second_event(rt: Runtime) -> None:
    carts = _carts(rt.container)
    fail_on(carts, "delete_cart", times=1)

    first = await fire(rt, "cleanup-expired-carts")

    # One cart could not be deleted: the firing fails (the other cart is gone) and
    # job.failed reaches the alert subscriber.
    assert first.status is RunStatus.FAILED
    assert len(carts.carts) == 3
    await wait_until(lambda: len(rt.container.resolve("notifications").alerts) == 1)

    second = await fire(rt, "cleanup-expired-carts")

    assert second.status is RunStatus.COMPLETED
    assert set(carts.carts) == {"cart_new", "cart_bought"}
    # Both events were emitted by the first firing; the second one's emits matched
    # their idempotency keys and stored nothing new.
    events = (await rt.store.list_events(name="cart.expired")).items
    assert sorted(e.data["cart_id"] for e in events) == ["cart_old", "cart_older"]


# -- sync-inventory (seed 002), with retries and the final-failure alert ---------------


async def test_sync_inventory_copies_the_warehouse_levels(rt: Runtime) -> None:
    inventory = rt.container.resolve("inventory")
    journal = rt.container.resolve("journal")

    result = await fire(rt, "sync-inventory")

    assert result.status is RunStatus.COMPLETED
    assert inventory.stocked == {"iitem_shirt_m": 25, "iitem_pants_l": 1}
    # Only the level that differed was written.
    assert journal.entries == ["inventory.update_inventory_levels iitem_shirt_m=25"]


async def _fire_moving_the_clock(rt: Runtime, clock: ManualClock, job: str) -> WorkflowResult:
    """Fire a job while virtual time runs fast, so its retry waits pass in milliseconds."""
    async with anyio.create_task_group() as tg:

        async def run_time_forward() -> None:
            while True:
                await anyio.sleep(0.002)
                clock.advance(0.5)

        tg.start_soon(run_time_forward)
        with anyio.fail_after(5):
            result = await fire(rt, job)
        tg.cancel_scope.cancel()
    return result


async def test_sync_inventory_retries_then_succeeds(rt: Runtime, clock: ManualClock) -> None:
    warehouse = rt.container.resolve("external_inventory")
    fail_on(warehouse, "get_inventory_levels", times=2)

    result = await _fire_moving_the_clock(rt, clock, "sync-inventory")

    assert result.status is RunStatus.COMPLETED
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status, s.attempts) for s in run.steps] == [("run-job", "completed", 3)]
    assert rt.container.resolve("inventory").stocked["iitem_shirt_m"] == 25
    assert await job_failed_events(rt) == []
    assert rt.container.resolve("notifications").alerts == []


async def test_sync_inventory_failing_for_good_alerts_once(rt: Runtime, clock: ManualClock) -> None:
    fail_on(rt.container.resolve("external_inventory"), "get_inventory_levels")

    result = await _fire_moving_the_clock(rt, clock, "sync-inventory")

    # Three attempts (max_retries=2), then the run fails and publishes job.failed ...
    assert result.status is RunStatus.FAILED
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status, s.attempts) for s in run.steps] == [("run-job", "failed", 3)]
    [event] = await job_failed_events(rt)
    assert event.data == {
        "job": "sync-inventory",
        "run_id": result.run_id,
        "workflow": "job-sync-inventory",
        "status": "failed",
        "error": {
            "step": "run-job",
            "type": "ServiceError",
            "message": "external_inventory.get_inventory_levels is unavailable",
        },
    }
    # ... which the job-failure-alert subscriber turns into one alert.
    delivery = await wait_delivery(rt, event.id, "job-failure-alert")
    assert delivery.status is DeliveryStatus.DONE
    assert rt.container.resolve("notifications").alerts == [
        {
            "type": "job_failure",
            "message": "job 'sync-inventory' failed: "
            "external_inventory.get_inventory_levels is unavailable",
            "severity": "high",
            "details": {
                "job": "sync-inventory",
                "run_id": result.run_id,
                "error_type": "ServiceError",
                "error": "external_inventory.get_inventory_levels is unavailable",
            },
        }
    ]
    assert rt.container.resolve("inventory").stocked["iitem_shirt_m"] == 10


# -- process-pending-orders (seed 002) -------------------------------------------------


def _short_order(container: Container) -> None:
    """Add a paid order for more sweatpants than the store has."""
    orders = container.resolve("orders")
    orders.orders["order_3"] = {
        **orders.orders["order_1"],
        "id": "order_3",
        "display_id": 1003,
        "items": [
            {
                "id": "item_3",
                "variant_id": "variant_pants_l",
                "quantity": 5,
                "variant": {"inventory_item_id": "iitem_pants_l", "manage_inventory": True},
            }
        ],
    }


async def test_pending_orders_are_fulfilled_or_reported(rt: Runtime) -> None:
    _short_order(rt.container)
    fulfillments = rt.container.resolve("fulfillment")
    notifications = rt.container.resolve("notifications")

    first = await fire(rt, "process-pending-orders")
    second = await fire(rt, "process-pending-orders")

    assert (first.status, second.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    # order_1 was fulfilled; order_2 is not paid; order_3 is short of stock.
    assert [f["order_id"] for f in fulfillments.fulfillments.values()] == ["order_1"]
    page = await rt.workflows.list_runs(workflow="order-processing")
    assert sorted(run.idempotency_key for run in page.runs) == [
        "order-processing:order_1",
        "order-processing:order_3",
    ]
    # Both firings saw order_3 pending; the admins heard about it once.
    assert [(a["type"], a["details"]["order_id"]) for a in notifications.alerts] == [
        ("insufficient_inventory", "order_3")
    ]


async def test_an_order_the_subscriber_processed_is_not_processed_again(rt: Runtime) -> None:
    # The same order twice: the event's subscriber, then the job. The fulfillment is
    # canceled in between, so the job sees the order as pending again and only the
    # shared transaction id keeps it from being processed a second time.
    event_id = await rt.emit("order.placed", {"id": "order_1"})
    await wait_delivery(rt, event_id, "order-processing")
    fulfillments = rt.container.resolve("fulfillment")
    await fulfillments.cancel_fulfillment("ful_1")

    result = await fire(rt, "process-pending-orders")

    assert result.status is RunStatus.COMPLETED
    page = await rt.workflows.list_runs(workflow="order-processing")
    assert [run.idempotency_key for run in page.runs] == ["order-processing:order_1"]
    assert list(fulfillments.fulfillments) == ["ful_1"]


# -- collect-analytics-data (seed 002) -------------------------------------------------


def test_daily_metrics_follow_the_seed() -> None:
    mugs, tea = {"variant_id": "v_mug", "quantity": 2}, {"variant_id": "v_tea", "quantity": 1}
    orders = [
        {"id": "o1", "customer_id": "cus_new", "total": 3000, "items": [mugs, tea]},
        {"id": "o2", "customer_id": "cus_old", "total": 1000, "items": [{**tea, "quantity": 3}]},
    ]

    metrics = daily_metrics(datetime(2026, 3, 9, tzinfo=UTC).date(), orders, [{"id": "cus_new"}])

    assert metrics == {
        "date": "2026-03-09",
        "orders": {"count": 2, "total_revenue": 4000, "average_order_value": 2000},
        "customers": {"new_count": 1, "returning_count": 1},
        "products": {
            "top_selling": [
                {"variant_id": "v_tea", "units_sold": 4},
                {"variant_id": "v_mug", "units_sold": 2},
            ]
        },
    }


def test_a_day_without_orders_has_zero_metrics() -> None:
    metrics = daily_metrics(datetime(2026, 3, 9, tzinfo=UTC).date(), [], [])

    assert metrics["orders"] == {"count": 0, "total_revenue": 0, "average_order_value": 0}
    assert metrics["products"] == {"top_selling": []}


async def test_collect_analytics_stores_and_mails_yesterdays_metrics(rt: Runtime) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    orders = rt.container.resolve("orders")
    template = orders.orders["order_1"]
    # One order yesterday morning, one just after midnight today: only the first counts.
    orders.orders = {
        "o_yesterday": {
            **template,
            "id": "o_yesterday",
            "created_at": yesterday + timedelta(hours=9),
        },
        "o_today": {**template, "id": "o_today", "created_at": today + timedelta(minutes=1)},
    }

    result = await fire(rt, "collect-analytics-data")

    assert result.status is RunStatus.COMPLETED
    day = yesterday.date().isoformat()
    stored = rt.container.resolve("analytics").daily_metrics
    assert list(stored) == [day]
    assert stored[day]["orders"] == {"count": 1, "total_revenue": 5997, "average_order_value": 5997}
    assert stored[day]["products"]["top_selling"] == [
        {"variant_id": "variant_shirt_m", "units_sold": 2},
        {"variant_id": "variant_pants_l", "units_sold": 1},
    ]
    [report] = rt.container.resolve("email").sent
    assert (report["template"], report["to"], report["data"]["date"]) == (
        "daily-report",
        "admins@example.com",
        day,
    )


# -- sync-brands-from-system (seed 004) -------------------------------------------------


async def test_sync_brands_job_runs_the_workflow(rt: Runtime) -> None:
    brands = rt.container.resolve("brands")

    result = await fire(rt, "sync-brands-from-system")

    assert result.status is RunStatus.COMPLETED
    assert brands.brands == {
        "brand_1": {"id": "brand_1", "name": "Acme Apparel"},
        "brand_2": {"id": "brand_2", "name": "Globex Goods"},
    }
    found = await rt.store.find_run(
        "sync-brands-from-cms", f"{result.run_id}:job:sync-brands-from-cms"
    )
    assert found is not None
    run = await rt.workflows.get_run(found.id)
    assert run.status is RunStatus.COMPLETED
    assert [(s.name, s.status) for s in run.steps] == [
        ("retrieve-brands-from-cms", "completed"),
        ("create-brands-step", "completed"),
        ("update-brands-step", "completed"),
    ]
