"""The scheduled workflows of seed 003: daily_report, backup_data, cleanup_old_data.

The schedules are checked as declared, as the runtime stores them, and as they fire:
the runtime runs on a ``ManualClock``, the test moves it onto a firing time, and the
scheduler starts a run whose input is the schedule's (computed at that moment for
``daily_report``). Every wait is bounded; no test waits on the wall clock for a firing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

import workflows.daily_report
from runtime import Container, RunRecord, RunStatus, Runtime
from runtime.scheduling.entries import schedules_for
from runtime.testing import ManualClock
from tests.examples.sonamu import runs_of, sonamu_runtime, steps_of
from tests.helpers.waiting import wait_until
from workflows.backup_data import backup_data
from workflows.cleanup_old_data import cleanup_old_data
from workflows.daily_report import daily_report

START = datetime(2026, 3, 10, 8, 59, 30, tzinfo=UTC)
"""Half a minute before 9 AM: the next firings are daily_report's and the hourly backup's."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def rt(db_url: str, container: Container, clock: ManualClock) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container, clock) as runtime:
        yield runtime


class Today:
    """Stands in for ``workflows.daily_report.today``: the date the test says it is."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.value


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> Today:
    fake = Today("2026-03-10")
    monkeypatch.setattr(workflows.daily_report, "today", fake)
    return fake


def test_the_schedules_are_the_seeds(today: Today) -> None:
    entries = {e.name: e for e in schedules_for([], [daily_report, backup_data, cleanup_old_data])}

    assert {name: (e.workflow, e.cron.expression) for name, e in entries.items()} == {
        "daily_report:daily_at_9am": ("daily_report", "0 9 * * *"),
        "backup_data:hourly_backup": ("backup_data", "0 * * * *"),
        "backup_data:daily_full_backup": ("backup_data", "0 2 * * *"),
        "cleanup_old_data:daily_cleanup": ("cleanup_old_data", "0 3 * * *"),
    }
    # Fixed inputs are values; daily_report's is computed each time it is asked for.
    assert entries["backup_data:hourly_backup"].input() == {"type": "incremental"}
    assert entries["backup_data:daily_full_backup"].input() == {"type": "full"}
    assert entries["cleanup_old_data:daily_cleanup"].input() == {"days_to_keep": 90}
    assert today.calls == 0
    assert entries["daily_report:daily_at_9am"].input() == {"date": "2026-03-10"}
    today.value = "2026-03-11"
    assert entries["daily_report:daily_at_9am"].input() == {"date": "2026-03-11"}
    assert today.calls == 2


def test_the_real_input_function_gives_todays_date() -> None:
    before = datetime.now(UTC).date().isoformat()
    value = daily_report.schedules[0].input_now()
    after = datetime.now(UTC).date().isoformat()

    assert value["date"] in {before, after}


async def test_the_runtime_plans_every_schedule(rt: Runtime) -> None:
    planned = {
        s.name: (s.workflow, s.expression, s.next_fire_at) for s in await rt.store.list_schedules()
    }

    assert planned == {
        "daily_report:daily_at_9am": (
            "daily_report",
            "0 9 * * *",
            datetime(2026, 3, 10, 9, tzinfo=UTC),
        ),
        "backup_data:hourly_backup": (
            "backup_data",
            "0 * * * *",
            datetime(2026, 3, 10, 9, tzinfo=UTC),
        ),
        "backup_data:daily_full_backup": (
            "backup_data",
            "0 2 * * *",
            datetime(2026, 3, 11, 2, tzinfo=UTC),
        ),
        "cleanup_old_data:daily_cleanup": (
            "cleanup_old_data",
            "0 3 * * *",
            datetime(2026, 3, 11, 3, tzinfo=UTC),
        ),
    }


async def wait_runs(rt: Runtime, workflow: str, count: int) -> list[RunRecord]:
    """Wait until ``workflow`` has ``count`` runs, all ended; them, oldest first."""
    found: list[RunRecord] = []

    async def ended() -> bool:
        runs = await runs_of(rt, workflow)
        found[:] = runs
        return len(runs) == count and all(run.status.terminal for run in runs)

    await wait_until(ended)
    return found


async def test_firings_start_runs_with_the_schedules_inputs(
    rt: Runtime, container: Container, clock: ManualClock, today: Today
) -> None:
    # 9 AM: the daily report and the hourly backup.
    clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
    [report] = await wait_runs(rt, "daily_report", 1)
    [hourly] = await wait_runs(rt, "backup_data", 1)

    assert (report.status, report.input) == (RunStatus.COMPLETED, {"date": "2026-03-10"})
    assert (hourly.status, hourly.input) == (RunStatus.COMPLETED, {"type": "incremental"})
    assert steps_of(await rt.workflows.get_run(hourly.id)) == [
        ("incremental_backup", "completed", 1)
    ]

    # 2 AM the next day: the full backup, and the hourly one (only the latest missed
    # hourly firing runs after a jump of the clock).
    today.value = "2026-03-11"
    clock.set(datetime(2026, 3, 11, 2, tzinfo=UTC))
    backups = await wait_runs(rt, "backup_data", 3)
    assert sorted(run.input["type"] for run in backups[1:]) == ["full", "incremental"]
    assert sorted(b["type"] for b in container.resolve("backups").backups) == [
        "full",
        "incremental",
        "incremental",
    ]

    # 3 AM: the cleanup.
    clock.set(datetime(2026, 3, 11, 3, tzinfo=UTC))
    [cleanup] = await wait_runs(rt, "cleanup_old_data", 1)
    assert (cleanup.status, cleanup.input) == (RunStatus.COMPLETED, {"days_to_keep": 90})

    # 9 AM again: the report's input was computed at this firing, not at the first.
    clock.set(datetime(2026, 3, 11, 9, tzinfo=UTC))
    reports = await wait_runs(rt, "daily_report", 2)
    assert [run.input for run in reports] == [{"date": "2026-03-10"}, {"date": "2026-03-11"}]
    assert [m["data"]["date"] for m in container.resolve("email").sent] == [
        "2026-03-10",
        "2026-03-11",
    ]


async def test_a_daily_report_reports_on_its_date(rt: Runtime, container: Container) -> None:
    # The demo orders were placed on 2026-01-01: two orders, one captured.
    handle = await rt.workflows.run("daily_report", {"date": "2026-01-01"})

    assert await handle.result(timeout=5) == {"success": True}
    run = await rt.workflows.get_run(handle.run_id)
    assert steps_of(run) == [("generate_report", "completed", 1), ("send_report", "completed", 1)]
    [mail] = container.resolve("email").sent
    assert mail["template"] == "daily-report"
    assert mail["data"]["metrics"] == {"date": "2026-01-01", "orders": 2, "revenue": 5997}


async def test_a_full_backup_run_takes_a_full_backup(rt: Runtime, container: Container) -> None:
    handle = await rt.workflows.run("backup_data", {"type": "full"})

    assert await handle.result(timeout=5) == {"backup_id": "backup_1", "type": "full"}
    assert container.resolve("backups").backups == [{"id": "backup_1", "type": "full"}]
