"""A job every second (6-field cron): its handler logs the run it belongs to.

The campaign finds the firing's nominal time from the run's key
(``schedule:tick:<nominal time>``).
"""

from __future__ import annotations

import structlog
from workflows._chaoslog import record

from runtime import Container, JobConfig


async def handler(container: Container) -> None:
    run_id = structlog.contextvars.get_contextvars().get("run_id")
    await record(kind="job", phase="done", run_id=run_id, job="tick")


config = JobConfig(name="tick", schedule="* * * * * *")
