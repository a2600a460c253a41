"""What the operator surface knows of the code: workflows, schedules and subscribers.

The service hands over its own; ``runtime dashboard`` and :func:`runtime.web.create_app`
load the project as the CLI does, so all three know the workflows, validate a durable
workflow's input and show the schedules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from runtime.config import load_project_config
from runtime.discovery import discover
from runtime.errors import ConfigError, DefinitionError
from runtime.registry import Registry
from runtime.scheduling.entries import ScheduleEntry, job_workflow, schedules_for
from runtime.sdk.specs import Job, Subscriber


@dataclasses.dataclass(frozen=True, slots=True)
class Project:
    """The definitions the API and the dashboard show and start runs of.

    Attributes:
        registry: every workflow and version (jobs' ``job-<name>`` workflows too).
        schedules: what the scheduler fires, jobs and workflows' own schedules alike.
        subscribers: each subscriber with its patterns and limits.
        jobs: the jobs of ``jobs/``.
        known: whether the code defines workflows; without any (no project, or a
            folder that defines none, as a web app's whose workflows live in code) a
            run is started by name, as :class:`runtime.Client` does.
        http_token: the project's ``http_token`` setting (``runtime.toml`` or
            ``RUNTIME_HTTP_TOKEN``), when it was loaded from a folder.
    """

    registry: Registry
    schedules: Sequence[ScheduleEntry]
    subscribers: Sequence[Subscriber]
    jobs: Sequence[Job]
    known: bool = True
    http_token: str | None = None

    @classmethod
    def load(cls, root: Path | str) -> Project:
        """The project at ``root``, loaded and checked as ``runtime start`` loads it.

        Raises:
            ConfigError: a bad setting or a broken module (each named with its file).
        """
        config = load_project_config(Path(root))
        found = discover(config)
        found.raise_problems()
        registry = Registry()
        for workflow in found.workflows:
            registry.register(workflow)
        for job in found.jobs:
            runs_as = job_workflow(job)
            if runs_as.name in registry.names():
                raise ConfigError(
                    f"job {job.name!r} ({job.source}) runs as the workflow {runs_as.name!r}, "
                    "which is also the name of a workflow; rename one"
                )
            registry.register(runs_as)
        try:
            schedules = schedules_for(found.jobs, registry.newest(), config.timezone)
        except DefinitionError as exc:
            raise ConfigError(f"{config.source}: {exc}") from None
        # A folder that defines no workflow (a web app's, its workflows in code) knows
        # none to check a name against: runs are started by name, as without a project.
        known = bool(registry.names())
        return cls(
            registry,
            schedules,
            found.subscribers,
            found.jobs,
            known=known,
            http_token=config.http_token,
        )

    @classmethod
    def unknown(cls) -> Project:
        """No project: runs are started by name and no definition is listed."""
        return cls(Registry(), (), (), (), known=False)

    def job_workflows(self) -> set[str]:
        """The names of the workflows jobs run as (``job-<name>``)."""
        return {job_workflow(job).name for job in self.jobs}
