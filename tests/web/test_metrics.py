"""``GET /metrics``: what a runtime did and what its database holds, in the Prometheus
text format, read back with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from runtime import Runtime, create_step, create_workflow
from runtime.models import DeliveryStatus, RunStatus
from runtime.sdk.specs import Job, JobConfig, Subscriber, SubscriberArgs, SubscriberConfig
from runtime.store import open_store
from runtime.store.records import WorkerRow
from runtime.testing import ManualClock
from runtime.web import create_app
from tests.web.conftest import client_of

TOKEN = "s3cret-token-for-metrics"
SIGNED = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition()`` on real time, for at most 10 seconds."""
    with anyio.fail_after(10):
        while True:
            if await condition():
                return
            await anyio.sleep(0.01)


def project(clock: ManualClock) -> dict[str, object]:
    """Two workflows (one fails), two subscribers (one's deliveries go dead), a job."""

    @create_step("reserve")
    async def reserve(order: int) -> int:
        clock.advance(2)  # a step that takes two seconds of the runtime's time
        return order

    @create_step("charge")
    async def charge(order: int) -> int:
        return order

    @create_step("refund")
    async def refund(order: int) -> int:
        raise RuntimeError("the bank said no")

    orders = create_workflow("orders", lambda order: charge(reserve(order)))
    refunds = create_workflow("refunds", lambda order: refund(order))

    async def audit(args: SubscriberArgs) -> None:
        return None

    async def mailer(args: SubscriberArgs) -> None:
        raise RuntimeError("mail server down")

    async def tick(container: object) -> None:
        return None

    return {
        "workflows": [orders, refunds],
        "subscribers": [
            Subscriber("audit", audit, SubscriberConfig("order.*")),
            Subscriber("mailer", mailer, SubscriberConfig("order.*", max_attempts=1)),
        ],
        "jobs": [Job(handler=tick, config=JobConfig(name="tick", schedule="* * * * *"))],
    }


async def test_a_service_scrape_shows_its_runs_steps_deliveries_firings_and_workers(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    definitions = project(clock)
    orders, refunds = definitions["workflows"]  # type: ignore[misc]
    url = f"sqlite:///{tmp_path / 'app.db'}"
    rt = Runtime(url, clock=clock, http="127.0.0.1:0", http_token=TOKEN, **definitions)  # type: ignore[arg-type]
    async with rt:
        for order in (1, 2):
            assert (await orders(rt.container).run(input=order)).status is RunStatus.COMPLETED
        failed = await refunds(rt.container).run(input=3, throw_on_error=False)
        assert failed.status is RunStatus.FAILED
        await rt.emit("order.placed", {"id": 1})

        async def delivered() -> bool:
            counts = await rt.store.count_deliveries()
            return counts[DeliveryStatus.DONE] == 1 and counts[DeliveryStatus.DEAD] == 1

        await until(delivered)
        clock.set(datetime(2026, 5, 1, 12, 1, 0, 250_000, tzinfo=UTC))  # 0.25 s late

        async def fired() -> bool:
            return "tick" in rt.telemetry.snapshot().schedules

        await until(fired)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as client:
            refused = await client.get("/metrics")
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "Unauthorized"
            response = await client.get("/metrics", headers=SIGNED)
            stored = await rt.store.count_runs()

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    samples = parse(response.text)
    assert value(samples, "runtime_store_up") == 1

    # Runs by workflow and status: what the store holds, every status of every workflow.
    runs = {
        (dict(labels)["workflow"], RunStatus(dict(labels)["status"])): v
        for labels, v in named(samples, "runtime_runs").items()
    }
    assert runs == {key: float(n) for key, n in stored.items()}
    assert runs["orders", RunStatus.COMPLETED] == 2
    assert runs["refunds", RunStatus.FAILED] == 1
    assert ("job-tick", RunStatus.PENDING) in runs  # the firing's run, whatever its status now

    # Steps, counted by this process as they ended.
    assert value(samples, "runtime_steps_completed_total", workflow="orders") == 4
    assert value(samples, "runtime_steps_failed_total", workflow="orders") == 0
    assert value(samples, "runtime_steps_failed_total", workflow="refunds") == 1
    assert value(samples, "runtime_step_duration_seconds_count", workflow="orders") == 4
    assert value(samples, "runtime_step_duration_seconds_sum", workflow="orders") == 4.0
    # Two "reserve" steps took 2 s each, two "charge" steps no time at all.
    assert value(samples, "runtime_step_duration_seconds_bucket", workflow="orders", le="1.0") == 2
    assert value(samples, "runtime_step_duration_seconds_bucket", workflow="orders", le="2.5") == 4

    # Deliveries by status, and the dead ones on their own.
    deliveries = {
        dict(labels)["status"]: v for labels, v in named(samples, "runtime_deliveries").items()
    }
    assert deliveries == {"pending": 0, "running": 0, "done": 1, "dead": 1}
    assert value(samples, "runtime_deliveries_dead") == 1

    # The schedule's firing, 0.25 s after its nominal time.
    assert value(samples, "runtime_schedule_firings_total", schedule="tick", outcome="started") == 1
    assert value(samples, "runtime_schedule_lag_seconds_count", schedule="tick") == 1
    assert value(samples, "runtime_schedule_lag_seconds_sum", schedule="tick") == 0.25
    assert value(samples, "runtime_schedule_lag_seconds_bucket", schedule="tick", le="0.1") == 0
    assert value(samples, "runtime_schedule_lag_seconds_bucket", schedule="tick", le="0.25") == 1
    assert value(samples, "runtime_schedule_last_lag_seconds", schedule="tick") == 0.25

    # This worker, alive, with the age of its last heartbeat.
    assert value(samples, "runtime_workers_live") == 1
    (labels,) = named(samples, "runtime_worker_heartbeat_age_seconds")
    assert dict(labels)["worker"] == rt.identity.id


async def test_the_app_of_create_app_serves_what_the_database_holds(tmp_path: Path) -> None:
    # No runtime behind it: runs, deliveries and workers, but no steps nor firings.
    url = f"sqlite:///{tmp_path / 'app.db'}"
    store = await open_store(url)
    now = datetime.now(UTC)
    try:
        await store.upsert_worker(WorkerRow("wrk_alive", "box-a", 11, now, now))
        stale = now - timedelta(minutes=5)
        await store.upsert_worker(WorkerRow("wrk_stale", "box-b", 12, stale, stale))
    finally:
        await store.close()
    async with client_of(create_app(url, TOKEN, project=None)) as client:
        assert (await client.get("/metrics")).status_code == 401
        response = await client.get("/metrics", headers=SIGNED)
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "runtime_store_up") == 1
    assert named(samples, "runtime_runs") == {}
    assert value(samples, "runtime_deliveries", status="dead") == 0
    assert value(samples, "runtime_workers_live") == 1
    ages = {
        dict(k)["worker"]: v
        for k, v in named(samples, "runtime_worker_heartbeat_age_seconds").items()
    }
    assert ages["wrk_alive"] < 60
    assert 300 <= ages["wrk_stale"] < 360
    assert not any(name.startswith(("runtime_step", "runtime_schedule")) for name, _ in samples)


async def test_a_database_that_cannot_be_read_answers_store_up_0_then_1_once_it_can(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the database's folder should be")
    app = create_app(f"sqlite:///{blocker / 'app.db'}", project=None)
    async with client_of(app) as client:
        down = await client.get("/metrics")
        assert down.status_code == 200
        samples = parse(down.text)
        assert value(samples, "runtime_store_up") == 0
        assert [name for name, _ in samples] == ["runtime_store_up"]

        blocker.unlink()
        blocker.mkdir()
        samples = parse((await client.get("/metrics")).text)
        assert value(samples, "runtime_store_up") == 1
        assert value(samples, "runtime_deliveries_dead") == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_metrics_takes_get_only(tmp_path: Path, method: str) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'app.db'}", project=None)
    async with client_of(app) as client:
        response = await client.request(method, "/metrics")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "MethodNotAllowed"
