"""Pause and resume: hold every run of a workflow during an outage, release them after.

``sync_external_data`` pulls changes from a partner's API, waits a minute (the
API allows one call per source per minute; ``ctx.sleep`` waits durably, status
``sleeping``, without holding a worker), then applies them.

When the partner's API goes down, runs that call it would fail one after the
other. Pause them instead, and resume them once it is back. One run::

    await rt.workflows.pause(run_id)     # pending, running or sleeping -> paused
    await rt.workflows.resume(run_id)    # paused -> pending, due now

- Pausing a ``running`` run lets the step under way finish; the run stops
  before its next step. Pausing a ``pending`` or ``sleeping`` run is immediate.
- Resuming makes the run due at once, except that a durable sleep keeps its
  original wake-up time.
- Both are idempotent (pausing a paused run is not an error), and both refuse
  a run that has ended (completed, failed, canceled): only ``retry`` applies
  to those.

Every active run of one workflow, as :func:`pause_all` and :func:`resume_all`
do below (the same calls exist on ``Client``, for a web app or a script)::

    paused = await pause_all(rt.workflows, "sync_external_data")
    ...                                   # the partner fixes their API
    resumed = await resume_all(rt.workflows, "sync_external_data")

:func:`handle_external_api_outage` and :func:`handle_external_api_recovery`
are the two handlers of Sonamu's example, built on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from pydantic import BaseModel

from runtime import InvalidTransitionError, RunPage, RunRecord, WorkflowContext, workflow

logger = structlog.get_logger("workflows.sync_external_data")

ACTIVE = ("pending", "running", "sleeping")
"""The statuses a run can be paused from."""

RATE_LIMIT_WINDOW = 60.0
"""Seconds the partner's API wants between two calls for one source."""


class WorkflowsApi(Protocol):
    """What the helpers need: ``rt.workflows`` or a ``Client`` both have it."""

    async def list_runs(
        self,
        *,
        status: Sequence[Any] | None = None,
        workflow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage: ...

    async def pause(self, run_id: str) -> RunRecord: ...

    async def resume(self, run_id: str) -> RunRecord: ...


class SyncInput(BaseModel):
    """Which source to sync."""

    source: str


@workflow(name="sync_external_data", input=SyncInput)
async def sync_external_data(ctx: WorkflowContext[SyncInput]) -> dict[str, int]:
    """Fetch a source's changes, wait out the rate-limit window, apply them."""
    api = ctx.container.resolve("external_data")
    source = ctx.input.source

    async def fetch() -> list[dict[str, Any]]:
        # A failure is logged with the context only this code knows, then re-raised
        # so the step fails (and the run shows the error).
        try:
            changes: list[dict[str, Any]] = await api.fetch_changes(source)
        except Exception as exc:
            ctx.logger.error("fetch_changes_failed", source=source, error=str(exc))
            raise
        return changes

    changes = await ctx.step("fetch_changes", fetch)
    await ctx.sleep("rate_limit", RATE_LIMIT_WINDOW)
    applied = await ctx.step("apply_changes", api.apply_changes, source, changes)
    return {"applied": applied}


async def _runs(api: WorkflowsApi, workflow_name: str, statuses: Sequence[str]) -> list[RunRecord]:
    """Every run of ``workflow_name`` in ``statuses``, all pages, oldest first."""
    runs: list[RunRecord] = []
    cursor: str | None = None
    while True:
        page = await api.list_runs(
            status=list(statuses), workflow=workflow_name, limit=100, cursor=cursor
        )
        runs.extend(page.runs)
        cursor = page.next_cursor
        if cursor is None:
            return runs[::-1]


async def pause_all(api: WorkflowsApi, workflow_name: str) -> list[str]:
    """Pause every pending, running or sleeping run of ``workflow_name``.

    All runs are listed first, then paused, so pausing does not shift the pages.
    A run that ended in between is left alone.

    Returns:
        The ids of the runs paused (running ones pause after their current step).
    """
    paused = []
    for run in await _runs(api, workflow_name, ACTIVE):
        try:
            await api.pause(run.id)
        except InvalidTransitionError:
            continue  # it ended (or a cancel began) since it was listed
        paused.append(run.id)
    logger.info("runs_paused", workflow=workflow_name, count=len(paused))
    return paused


async def resume_all(api: WorkflowsApi, workflow_name: str) -> list[str]:
    """Resume every paused run of ``workflow_name``.

    A run paused while it was running, whose step has not finished yet, is still
    ``running`` with the pause pending; resuming it withdraws the pause, so an
    outage that ends quickly leaves no run behind paused.

    Returns:
        The ids of the runs resumed.
    """
    resumed = []
    for run in await _runs(api, workflow_name, ("paused", "running")):
        if run.status != "paused" and run.control != "pause":
            continue  # running, and nobody asked it to pause
        try:
            await api.resume(run.id)
        except InvalidTransitionError:
            continue  # canceled since it was listed
        resumed.append(run.id)
    logger.info("runs_resumed", workflow=workflow_name, count=len(resumed))
    return resumed


async def handle_external_api_outage(api: WorkflowsApi) -> list[str]:
    """The partner's API is down: pause every active ``sync_external_data`` run."""
    return await pause_all(api, "sync_external_data")


async def handle_external_api_recovery(api: WorkflowsApi) -> list[str]:
    """The partner's API is back: resume every paused ``sync_external_data`` run."""
    return await resume_all(api, "sync_external_data")
