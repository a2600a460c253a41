"""Where schedules come from: jobs and workflows' declared schedules, as entries to fire.

A job (``jobs/``) is a schedule named after the job whose firings are runs of
the ``job-<name>`` workflow (:func:`job_workflow` builds it); a workflow
declared with ``schedule=...`` or ``schedules=[...]`` contributes schedules
named ``<workflow>:<schedule name>``. :func:`schedules_for` collects both and
refuses two schedules with one name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from structlog.contextvars import bound_contextvars

from runtime.cron import CronSchedule
from runtime.errors import DefinitionError
from runtime.models import Overlap, RunKind
from runtime.sdk.composition import CompositionWorkflow, create_workflow
from runtime.sdk.definitions import WorkflowDefinition
from runtime.sdk.specs import Job, origin_scope
from runtime.sdk.steps import StepContext, create_step

JOB_STEP = "run-job"
"""The name of the one step of a job's workflow."""

JOB_FAILED = "job.failed"
"""The event a job's run publishes when it fails for good."""


def job_workflow(job: Job) -> CompositionWorkflow:
    """The workflow whose runs are a job's firings: ``job-<name>``, one step.

    The step calls ``job.handler(container)``, retried per the job's
    ``max_retries`` and ``retry_interval``. A workflow the handler runs without
    a ``transaction_id`` gets one derived from the job's run
    (``"<run id>:job:<workflow>"``), so a retried or resumed job finds the run
    it already started. A run that fails for good publishes ``job.failed`` with
    ``{"job": <name>, "run_id", "workflow", "status", "error"}``.

    Args:
        job: the job (handler and config).

    Returns:
        The workflow definition, to register with the runtime.
    """
    handler = job.handler

    async def run_job(ctx: StepContext) -> None:
        with origin_scope(f"{ctx.run_id}:job"), bound_contextvars(job=job.name):
            await handler(ctx.container)

    step = create_step(
        JOB_STEP,
        run_job,
        max_retries=job.config.max_retries,
        retry_interval=job.config.retry_interval,
    )
    workflow = create_workflow(f"job-{job.name}", lambda: step())
    return dataclasses.replace(workflow, failure_event=(JOB_FAILED, {"job": job.name}))


def _no_input(nominal_at: datetime) -> Any:
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One schedule to run: when it fires and which workflow it starts.

    Attributes:
        name: unique among schedules (a job's name, or ``<workflow>:<schedule>``).
        workflow: the workflow each firing starts a run of.
        cron: the expression in its timezone.
        input: called at each firing with its nominal time; returns the run's input (JSON).
        max_executions: stop after this many started runs (``None``: no limit).
        overlap: ``"skip"`` a firing while the previous run is active, or ``"allow"``.
        catchup_window: seconds late the latest missed firing may be and still run.
        version: the workflow version the runs are created with.
        kind: the workflow's kind (a job's workflow is a composition).
        origin: where it was declared, for error messages.
    """

    name: str
    workflow: str
    cron: CronSchedule
    input: Callable[[datetime], Any] = _no_input
    max_executions: int | None = None
    overlap: Overlap = Overlap.SKIP
    catchup_window: float = 3600.0
    version: str | None = None
    kind: RunKind = RunKind.COMPOSITION
    origin: str = "(code)"


def schedules_for(
    jobs: Iterable[Job],
    workflows: Iterable[WorkflowDefinition] = (),
    default_timezone: str = "UTC",
) -> list[ScheduleEntry]:
    """The schedules of ``jobs`` and of ``workflows``, ready for a :class:`Scheduler`.

    Args:
        jobs: each becomes a schedule named after the job, starting ``job-<name>``
            with input ``None``.
        workflows: each :class:`~runtime.sdk.specs.Schedule` they declare becomes a
            schedule named ``<workflow>:<schedule name>``.
        default_timezone: for schedules that name no timezone (the project's).

    Raises:
        DefinitionError: two schedules with one name (both are named), or a bad
            expression or timezone.
    """
    found: dict[str, ScheduleEntry] = {}

    def add(entry: ScheduleEntry) -> None:
        first = found.get(entry.name)
        if first is not None:
            raise DefinitionError(
                f"two schedules are named {entry.name!r}: {first.origin} and {entry.origin}; "
                "rename one of them"
            )
        found[entry.name] = entry

    for job in jobs:
        config = job.config
        add(
            ScheduleEntry(
                name=job.name,
                workflow=f"job-{job.name}",
                cron=CronSchedule(config.schedule, config.timezone or default_timezone),
                max_executions=config.number_of_executions,
                overlap=Overlap(config.overlap),
                catchup_window=config.catchup_window,
                origin=f"job {job.name!r} ({job.source})",
            )
        )
    for workflow in workflows:
        for schedule in workflow.schedules:
            add(
                ScheduleEntry(
                    name=f"{workflow.name}:{schedule.name}",
                    workflow=workflow.name,
                    cron=CronSchedule(schedule.cron, schedule.timezone or default_timezone),
                    input=schedule.input_now,
                    max_executions=schedule.number_of_executions,
                    overlap=Overlap(schedule.overlap),
                    catchup_window=schedule.catchup_window,
                    version=workflow.version,
                    kind=workflow.kind,
                    origin=f"schedule {schedule.name!r} of workflow {workflow.name!r}",
                )
            )
    return list(found.values())
