"""The repository as a project: discovery finds every example, and the project runs them."""

from __future__ import annotations

from pathlib import Path

from runtime import RunStatus, Runtime
from runtime.config import load_project_config
from runtime.discovery import discover
from runtime.models import DeliveryStatus
from runtime.testing import ManualClock
from tests.helpers.definitions import QUIET_TIME
from tests.helpers.waiting import wait_delivery

ROOT = Path(__file__).resolve().parents[2]

SUBSCRIBERS = {
    "hello-customer": ("customer.created",),
    "order-processing": ("order.placed",),
    "customer-registration": ("customer.registered",),
    "job-failure-alert": ("job.failed",),
}
JOBS = {
    "run-once-a-day": "0 0 * * *",
    "cleanup-expired-carts": "0 2 * * *",
    "sync-inventory": "0 */6 * * *",
    "process-pending-orders": "*/15 * * * *",
    "collect-analytics-data": "0 1 * * *",
    "sync-brands-from-system": "0 0 * * *",
}


def test_runtime_toml_is_valid() -> None:
    config = load_project_config(ROOT, environ={})

    assert config.database == "sqlite:///runtime.db"
    assert config.setup == "services:setup"
    assert config.timezone == "UTC"


def test_discovery_finds_every_example_without_problems() -> None:
    found = discover(load_project_config(ROOT, environ={}))

    assert found.problems == []
    assert {s.id: s.config.patterns for s in found.subscribers} == SUBSCRIBERS
    assert {j.name: j.config.schedule for j in found.jobs} == JOBS
    # One module per subscriber and per job, none left out.
    modules = {
        path.stem
        for folder in ("subscribers", "jobs")
        for path in (ROOT / folder).glob("*.py")
        if not path.name.startswith("_")
    }
    sources = {Path(s.source).stem for s in [*found.subscribers, *found.jobs]}
    assert sources == modules
    used = {"hello-world-two-steps", "order-processing", "customer-registration"}
    assert used | {"sync-brands-from-cms"} <= {w.name for w in found.workflows}


async def test_the_project_starts_and_delivers_an_event(db_url: str) -> None:
    # A ManualClock keeps the project's jobs from firing during the test.
    async with Runtime.from_project(ROOT, database=db_url, clock=ManualClock(QUIET_TIME)) as rt:
        assert sorted(s.id for s in rt.subscribers) == sorted(SUBSCRIBERS)
        event_id = await rt.emit("customer.created", {"first_name": "Grace"})

        delivery = await wait_delivery(rt, event_id, "hello-customer")

        assert delivery.status is DeliveryStatus.DONE
        page = await rt.workflows.list_runs(workflow="hello-world-two-steps")
        assert [(run.status, run.input) for run in page.runs] == [
            (RunStatus.COMPLETED, {"name": "Grace"})
        ]


async def test_every_job_of_the_project_completes_on_the_demo_data(db_url: str) -> None:
    async with Runtime.from_project(ROOT, database=db_url, clock=ManualClock(QUIET_TIME)) as rt:
        for name in JOBS:
            result = await rt.registry.get(f"job-{name}")(rt.container).run(throw_on_error=False)
            assert (name, result.status) == (name, RunStatus.COMPLETED)

        # The demo data as the jobs left it: the old cart is gone, the warehouse's
        # shirt count is in, order_1 is fulfilled, the CMS's brands are in the store.
        assert rt.container.resolve("carts").carts == {}
        assert rt.container.resolve("inventory").stocked["iitem_shirt_m"] == 25
        fulfillments = rt.container.resolve("fulfillment").fulfillments.values()
        assert [f["order_id"] for f in fulfillments] == ["order_1"]
        assert len(rt.container.resolve("brands").brands) == 2
        assert rt.container.resolve("notifications").alerts == []
