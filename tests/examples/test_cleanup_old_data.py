"""Cleanup (seed 003): the log records older than ``days_to_keep`` days are deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from runtime import Container, InputValidationError, Runtime
from tests.examples.sonamu import runs_of, sonamu_runtime, steps_of
from tests.helpers.waiting import WAIT
from workflows.cleanup_old_data import cleanup_old_data


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container) as runtime:
        yield runtime


def test_the_name_comes_from_the_function() -> None:
    assert cleanup_old_data.name == "cleanup_old_data"


async def test_records_older_than_the_cutoff_are_deleted(rt: Runtime, container: Container) -> None:
    now = datetime.now(UTC)
    logs = container.resolve("logs")
    logs.records = [
        {"id": f"log_{days}", "message": "...", "created_at": now - timedelta(days=days)}
        for days in (400, 91, 89, 1)
    ]

    handle = await rt.workflows.run("cleanup_old_data", {"days_to_keep": 90})

    assert await handle.result(timeout=WAIT) == {"deleted": 2}
    assert [r["id"] for r in logs.records] == ["log_89", "log_1"]
    run = await rt.workflows.get_run(handle.run_id)
    assert steps_of(run) == [
        ("compute_cutoff", "completed", 1),
        ("delete_old_records", "completed", 1),
    ]
    # The cutoff is stored with the run, so a resumed run deletes up to the same moment.
    cutoff = datetime.fromisoformat(run.steps[0].output)
    assert now - timedelta(days=90) <= cutoff <= datetime.now(UTC) - timedelta(days=90)


async def test_nothing_is_deleted_when_everything_is_recent(
    rt: Runtime, container: Container
) -> None:
    logs = container.resolve("logs")
    logs.records = [{"id": "log_new", "message": "...", "created_at": datetime.now(UTC)}]

    handle = await rt.workflows.run("cleanup_old_data", {"days_to_keep": 1})

    assert await handle.result(timeout=WAIT) == {"deleted": 0}
    assert [r["id"] for r in logs.records] == ["log_new"]


async def test_days_to_keep_must_be_positive(rt: Runtime) -> None:
    with pytest.raises(InputValidationError):
        await rt.workflows.run("cleanup_old_data", {"days_to_keep": 0})
    assert await runs_of(rt, "cleanup_old_data") == []
