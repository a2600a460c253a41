"""Scheduler test helpers: a store on the test's database (each backend), a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from runtime.scheduling.entries import ScheduleEntry, schedules_for
from runtime.scheduling.scheduler import Scheduler
from runtime.sdk.specs import Job, JobConfig
from runtime.store import open_store
from runtime.store.base import Store
from runtime.testing import ManualClock
from tests.helpers.backends import backend as backend

START = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    """A time on the tests' day, 2026-05-01 UTC."""
    return datetime(2026, 5, 1, hh, mm, ss, tzinfo=UTC)


async def _noop(container: object) -> None:
    return None


def job(name: str, schedule: str, **config: object) -> Job:
    """A job with a handler that does nothing (the scheduler never calls handlers)."""
    return Job(handler=_noop, config=JobConfig(name=name, schedule=schedule, **config))  # type: ignore[arg-type]


def entries(*jobs: Job, tz: str = "UTC") -> list[ScheduleEntry]:
    return schedules_for(jobs, (), tz)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await open_store(db_url)
    try:
        yield opened
    finally:
        await opened.close()


@asynccontextmanager
async def running(*schedulers: Scheduler, clock: ManualClock) -> AsyncIterator[None]:
    """Run schedulers in a task group; on entry they have reconciled and are asleep."""
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            for scheduler in schedulers:
                await tg.start(scheduler.run)
            await clock.wait_sleepers(len(schedulers))
        yield
        tg.cancel_scope.cancel()


async def move_to(clock: ManualClock, moment: datetime, sleepers: int = 1) -> None:
    """Set the clock, then wait until every scheduler is asleep again (done reacting)."""
    with anyio.fail_after(5):
        clock.set(moment)
        await clock.wait_sleepers(sleepers)


async def step_through(
    clock: ManualClock, end: datetime, every: timedelta, sleepers: int = 1
) -> None:
    """Move the clock to ``end`` in steps of ``every`` (each step waited for)."""
    moment = clock.now()
    while moment < end:
        moment = min(moment + every, end)
        await move_to(clock, moment, sleepers)


class Counter:
    """A callable that counts its calls (an ``on_started`` hook)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
