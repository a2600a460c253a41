"""Once a day at midnight, run the hello-world workflow (seed 000's ``run-once-a-day``).

The smallest job there is: a module in ``jobs/`` that exports an async
``handler``, which receives the container, and a ``config`` with a unique name
and a cron expression. ``runtime start`` fires it on schedule; ``runtime jobs
list`` shows when it fires next.

Each firing is a workflow run named ``job-run-once-a-day`` with one step that
calls the handler, so it has a history (``runtime runs list --workflow
job-run-once-a-day``) like any other run. The seed's ``hello-world`` takes a
``name``; here that is ``hello-world-two-steps`` (``workflows/hello_world.py``).
"""

from __future__ import annotations

from runtime import Container, JobConfig
from workflows.hello_world import hello_world_two_steps


async def handler(container: Container) -> None:
    """Greet John, as the seed does, and log the message."""
    # No transaction_id: inside a job the runtime derives one from the job's run,
    # so a retried or resumed firing finds this run instead of starting another.
    result = await hello_world_two_steps(container).run(input={"name": "John"})
    container.resolve("logger").info("daily_message", message=result.result["message"])


config = JobConfig(name="run-once-a-day", schedule="0 0 * * *")
