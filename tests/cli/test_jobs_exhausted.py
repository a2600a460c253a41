"""A job that used up its number_of_executions never fires again: the listings say so
instead of showing fire times that will never come."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio

from runtime.store.records import ScheduleSpec
from runtime.store.sqlite import SqliteStore
from tests.cli.conftest import cli, cli_json

TWICE_JOB = """
from runtime.sdk.specs import JobConfig

async def handler(container) -> None:
    pass

config = JobConfig(name="twice", schedule="* * * * *", number_of_executions=2)
"""


def _fired_twice(db: Path) -> None:
    """The store as the scheduler leaves it after the second and last firing."""

    async def write() -> None:
        store = await SqliteStore.open(str(db))
        try:
            now = datetime.now(UTC)
            spec = ScheduleSpec(
                "twice", "job-twice", "* * * * *", "Asia/Tokyo", 2, "skip", 3600.0, now
            )
            await store.sync_schedules([spec], now)
            await store._write(
                lambda c: c.execute(
                    "UPDATE schedules SET executions = 2, next_fire_at = NULL WHERE name = 'twice'"
                )
            )
        finally:
            await store.close()

    anyio.run(write)


def test_an_exhausted_job_shows_done_and_no_fire_times(project: Path) -> None:
    (project / "jobs" / "twice.py").write_text(TWICE_JOB)
    _fired_twice(project / "app.db")
    # Failed before: three upcoming fire times for a job that never fires again.
    for args in (["jobs", "list"], ["schedules"]):
        listed = {j["name"]: j for j in cli_json(project, *args)}
        twice = listed["twice"]
        assert (twice["next"], twice["exhausted"], twice["executions"]) == ([], True, 2)
        assert len(listed["cleanup"]["next"]) == 3 and listed["cleanup"]["exhausted"] is False
        (line,) = [line for line in cli(project, *args).stdout.splitlines() if "twice" in line]
        assert "done (2 of 2)" in line
