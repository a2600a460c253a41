"""Schedules with several runtimes on one database: a process that starts never turns
off the schedules another live process declares (DESIGN 5)."""

from __future__ import annotations

from datetime import UTC, datetime

from runtime import Runtime
from runtime.models import FiringOutcome
from runtime.scheduling.entries import schedules_for
from runtime.scheduling.scheduler import Scheduler
from runtime.sdk.specs import Job, JobConfig
from runtime.store.records import WorkerRow
from runtime.testing import ManualClock
from tests.helpers.backends import opened
from tests.helpers.waiting import wait_until

START = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def _noop(container: object) -> None:
    return None


def job(name: str) -> Job:
    return Job(handler=_noop, config=JobConfig(name=name, schedule="* * * * *"))


async def active(rt: Runtime) -> dict[str, bool]:
    return {s.name: s.active for s in await rt.store.list_schedules()}


async def test_an_embedded_runtime_without_jobs_leaves_the_services_jobs_running(
    db_url: str,
) -> None:
    clock = ManualClock(START)
    async with Runtime(db_url, jobs=[job("tick")], clock=clock) as service:
        assert await active(service) == {"tick": True}
        # A web app embeds the smallest form (DESIGN 1.3): no jobs of its own.
        async with Runtime(db_url) as web:
            assert await active(web) == {"tick": True}
        assert await active(service) == {"tick": True}
        clock.set(datetime(2026, 5, 1, 12, 1, 0, tzinfo=UTC))

        async def fired() -> bool:
            firings = await service.store.list_firings("tick")
            return [f.outcome for f in firings] == [FiringOutcome.STARTED]

        await wait_until(fired)  # the service's job still fires


async def test_a_second_service_keeps_the_live_ones_schedules_and_drops_the_dead_ones(
    db_url: str,
) -> None:
    async with Runtime(db_url, jobs=[job("a")]) as first:
        async with Runtime(db_url, jobs=[job("b")]):
            # Another project on the same file: both sets run, neither turns off the other.
            assert await active(first) == {"a": True, "b": True}
        assert await active(first) == {"a": True, "b": True}
    # Once the first has stopped, no live worker declares 'a': a start removes it.
    async with Runtime(db_url, jobs=[job("b")]) as later:
        assert await active(later) == {"a": False, "b": True}


async def test_a_worker_that_died_does_not_keep_its_schedules(db_url: str) -> None:
    async with Runtime(db_url, jobs=[job("a")]) as first:
        worker = first.identity.id
    # The first process left its rows behind (killed before it removed them): its
    # registration, its heartbeat long stale, and its declaration of 'a'...
    async with opened(db_url) as store:
        await store.upsert_worker(WorkerRow(worker, "elsewhere", 1, LONG_AGO, LONG_AGO))
        plans = schedules_for([job("a")], (), "UTC")
        scheduler = Scheduler(store, ManualClock(datetime.now(UTC)), plans, worker_id=worker)
        assert [r.name for r in await scheduler.reconcile()] == ["a"]
    # ...but its heartbeat is long stale: it declares nothing any more.
    async with Runtime(db_url, jobs=[job("b")]) as later:
        assert await active(later) == {"a": False, "b": True}
