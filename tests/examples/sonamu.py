"""Helpers for the tests of the Sonamu examples (seed 003): a runtime that knows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from runtime import Container, RunRecord, RunStatus, Runtime
from runtime.clock import Clock
from tests.helpers.waiting import WAIT, wait_until
from workflows.backup_data import backup_data
from workflows.cleanup_old_data import cleanup_old_data
from workflows.daily_report import daily_report
from workflows.process_payment import process_payment
from workflows.process_user_data import process_user_data
from workflows.send_bulk_email import send_bulk_email
from workflows.sync_external_data import sync_external_data
from workflows.welcome_email import send_welcome_email, send_welcome_email_v1

SONAMU_WORKFLOWS = [
    send_welcome_email_v1,
    send_welcome_email,
    process_payment,
    daily_report,
    backup_data,
    send_bulk_email,
    process_user_data,
    cleanup_old_data,
    sync_external_data,
]
"""Every durable workflow of the Sonamu examples."""


@asynccontextmanager
async def sonamu_runtime(
    db_url: str, container: Container, clock: Clock | None = None
) -> AsyncIterator[Runtime]:
    """A runtime on ``db_url`` that knows every Sonamu example (and fires their schedules)."""
    async with Runtime(
        database=db_url, workflows=SONAMU_WORKFLOWS, container=container, clock=clock
    ) as runtime:
        yield runtime


async def runs_of(rt: Runtime, workflow: str) -> list[RunRecord]:
    """The runs of ``workflow``, oldest first."""
    page = await rt.workflows.list_runs(workflow=workflow, limit=100)
    return page.runs[::-1]


async def wait_statuses(
    rt: Runtime, run_ids: list[str], allowed: set[RunStatus], timeout: float = WAIT
) -> list[RunRecord]:
    """Wait until every run is in one of ``allowed``; the runs then, in the given order."""
    found: dict[str, RunRecord] = {}

    async def settled() -> bool:
        for run_id in run_ids:
            found[run_id] = await rt.workflows.get_run(run_id)
        return all(record.status in allowed for record in found.values())

    await wait_until(settled, timeout)
    return [found[run_id] for run_id in run_ids]


def step_names(run: RunRecord) -> list[str]:
    """The names of a run's steps, in order."""
    return [step.name for step in run.steps]


def steps_of(run: RunRecord) -> list[tuple[str, str, int]]:
    """``(name, status, attempts)`` of each of a run's steps, in order."""
    return [(step.name, step.status.value, step.attempts) for step in run.steps]


def by_recipient(sent: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """E-mails sent, by recipient (each recipient got at most one)."""
    recipients = [message["to"] for message in sent]
    assert len(recipients) == len(set(recipients)), recipients
    return {message["to"]: message for message in sent}
