"""``GET /metrics``: the runtime's state and work in the Prometheus text format (DESIGN 6).

Each scrape reads the store (runs by workflow and status, deliveries by status, the
workers and their heartbeats) within :data:`STORE_TIMEOUT` seconds, takes a snapshot
of the process's :class:`~runtime.telemetry.Telemetry` when the app is served by a
runtime (steps ended, schedule firings and their lag), and writes both through a
:class:`prometheus_client.CollectorRegistry` built for that scrape alone: nothing
is registered in prometheus_client's global registry, so any number of runtimes and
apps live in one process. A database that cannot be read still answers 200, with
``runtime_store_up 0`` and without the store's metrics, so that an alert can say
"the database is down" rather than "the target is down". ``docs/metrics.md`` lists
every metric.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

import anyio
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runtime.engine.leases import LEASE_TTL
from runtime.models import DeliveryStatus, RunStatus
from runtime.store.records import WorkerRow
from runtime.telemetry import Histogram, Telemetry, TelemetrySnapshot
from runtime.web.console import Console

logger = structlog.get_logger("runtime.web")

STORE_TIMEOUT = 5.0
"""Seconds a scrape waits for the store before it answers ``runtime_store_up 0``."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoreReading:
    """What one scrape read from the store.

    Attributes:
        runs: runs by (workflow, status).
        deliveries: deliveries by status.
        workers: every registered worker.
        now: the time the heartbeats are judged against.
        seconds: how long the reads took.
    """

    runs: Mapping[tuple[str, RunStatus], int]
    deliveries: Mapping[DeliveryStatus, int]
    workers: list[WorkerRow]
    now: datetime
    seconds: float


async def read_store(console: Console) -> StoreReading | None:
    """The store's counts and workers, or ``None`` when the store cannot be read in time."""
    started = time.perf_counter()
    try:
        with anyio.fail_after(STORE_TIMEOUT):
            store = await console.store()
            runs = await store.count_runs()
            deliveries = await store.count_deliveries()
            workers = await store.list_workers()
    except Exception as exc:  # whatever the database did: the scrape says store_up 0
        logger.warning("metrics_store_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None
    seconds = time.perf_counter() - started
    return StoreReading(runs, deliveries, workers, console.clock.now(), seconds)


class _Scrape:
    """The collector of one scrape: what was read, as metric families."""

    def __init__(
        self,
        reading: StoreReading | None,
        telemetry: TelemetrySnapshot | None,
        workflows: Iterable[str],
    ) -> None:
        self._reading = reading
        self._telemetry = telemetry
        self._workflows = sorted(workflows)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "runtime_store_up", "1 if the database answered this scrape in time, else 0."
        )
        up.add_metric([], 1.0 if self._reading is not None else 0.0)
        yield up
        if self._reading is not None:
            yield from _store_metrics(self._reading, self._workflows)
        if self._telemetry is not None:
            yield from _telemetry_metrics(self._telemetry)


def _store_metrics(reading: StoreReading, workflows: list[str]) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "runtime_runs",
        "Runs in the database by workflow and status (ended runs until retention removes them).",
        labels=["workflow", "status"],
    )
    counts = dict(reading.runs)
    for workflow in workflows:  # the project's workflows show zeros before their first run
        for status in RunStatus:
            counts.setdefault((workflow, status), 0)
    for (workflow, status), n in sorted(counts.items()):
        runs.add_metric([workflow, status.value], n)
    yield runs
    deliveries = GaugeMetricFamily(
        "runtime_deliveries",
        "Event deliveries in the database by status.",
        labels=["status"],
    )
    for state in DeliveryStatus:
        deliveries.add_metric([state.value], reading.deliveries.get(state, 0))
    yield deliveries
    dead = GaugeMetricFamily(
        "runtime_deliveries_dead",
        "Deliveries that used up their attempts and wait for a redrive.",
    )
    dead.add_metric([], reading.deliveries.get(DeliveryStatus.DEAD, 0))
    yield dead
    # Read at call time: the multi-process launcher shortens the lease here too.
    lease = LEASE_TTL
    ages = GaugeMetricFamily(
        "runtime_worker_heartbeat_age_seconds",
        "Seconds since each registered worker's last heartbeat.",
        labels=["worker", "host", "pid"],
    )
    live = 0
    for worker in reading.workers:
        age = max((reading.now - worker.heartbeat_at).total_seconds(), 0.0)
        live += age < lease
        ages.add_metric([worker.id, worker.host, str(worker.pid)], age)
    workers = GaugeMetricFamily(
        "runtime_workers_live",
        f"Workers whose last heartbeat is younger than a lease ({lease:g} s).",
    )
    workers.add_metric([], live)
    yield workers
    yield ages
    took = GaugeMetricFamily(
        "runtime_store_read_seconds", "Seconds this scrape's reads of the database took."
    )
    took.add_metric([], reading.seconds)
    yield took


def _telemetry_metrics(snapshot: TelemetrySnapshot) -> Iterator[Metric]:
    completed = CounterMetricFamily(
        "runtime_steps_completed",
        "Steps this process completed, by workflow.",
        labels=["workflow"],
    )
    failed = CounterMetricFamily(
        "runtime_steps_failed",
        "Steps this process saw fail for good (after their retries), by workflow.",
        labels=["workflow"],
    )
    durations = HistogramMetricFamily(
        "runtime_step_duration_seconds",
        "Seconds from a step's start to its end, retries included (completed and failed).",
        labels=["workflow"],
    )
    for workflow, counts in sorted(snapshot.steps.items()):
        completed.add_metric([workflow], counts.completed)
        failed.add_metric([workflow], counts.failed)
        durations.add_metric([workflow], _buckets(counts.duration), counts.duration.total)
    yield completed
    yield failed
    yield durations
    firings = CounterMetricFamily(
        "runtime_schedule_firings",
        "Schedule firings this process recorded, by schedule and outcome "
        "(started, skipped_overlap, missed).",
        labels=["schedule", "outcome"],
    )
    lags = HistogramMetricFamily(
        "runtime_schedule_lag_seconds",
        "Seconds from a firing's nominal time to its run's commit, for firings that started one.",
        labels=["schedule"],
    )
    last = GaugeMetricFamily(
        "runtime_schedule_last_lag_seconds",
        "The lag of each schedule's latest firing that started a run.",
        labels=["schedule"],
    )
    for schedule, fired in sorted(snapshot.schedules.items()):
        for outcome, n in sorted(fired.outcomes.items()):
            firings.add_metric([schedule, outcome], n)
        lags.add_metric([schedule], _buckets(fired.lag), fired.lag.total)
        if fired.last_lag is not None:
            last.add_metric([schedule], fired.last_lag)
    yield firings
    yield lags
    yield last


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """A histogram's cumulative buckets, as prometheus_client takes them: ``le`` written
    as its own histograms write it (``1.0``, ``+Inf``)."""
    return [
        ("+Inf" if bound == float("inf") else repr(bound), n) for bound, n in histogram.cumulative()
    ]


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text format (``docs/metrics.md``)."""
    console: Console = request.app.state.console
    telemetry: Telemetry | None = request.app.state.telemetry
    reading = await read_store(console)
    snapshot = telemetry.snapshot() if telemetry is not None else None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(reading, snapshot, console.project.registry.names()))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[BaseRoute]:
    """``GET /metrics``."""
    return [Route("/metrics", metrics, methods=["GET"])]
