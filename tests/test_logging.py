"""Log context: every line written inside a step, a handler or a job carries where it came from."""

from __future__ import annotations

from typing import Any

import anyio
import structlog

from runtime import Runtime, create_step, create_workflow
from runtime.specs import Job, JobConfig, Subscriber, SubscriberArgs, SubscriberConfig


async def test_a_step_logs_with_its_run_workflow_and_step(db_url: str) -> None:
    seen: list[dict[str, Any]] = []

    @create_step("look")
    async def look() -> None:
        seen.append(structlog.contextvars.get_contextvars())

    workflow = create_workflow("logged", lambda: look())
    async with Runtime(database=db_url, workflows=[workflow]) as rt:
        result = await workflow(rt.container).run()
    assert seen == [{"run_id": result.run_id, "workflow": "logged", "step": "look"}]
    assert structlog.contextvars.get_contextvars() == {}


async def test_a_handler_logs_with_its_event_and_subscriber(db_url: str) -> None:
    seen: list[dict[str, Any]] = []
    done = anyio.Event()

    async def handler(args: SubscriberArgs) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        done.set()

    subscriber = Subscriber("auditor", handler, SubscriberConfig("order.placed"))
    async with Runtime(database=db_url, subscribers=[subscriber]) as rt:
        event_id = await rt.emit("order.placed", {"id": "o1"})
        with anyio.fail_after(5):
            await done.wait()
    assert seen == [{"event_id": event_id, "event": "order.placed", "subscriber": "auditor"}]


async def test_a_job_logs_with_its_name_run_and_step(db_url: str) -> None:
    seen: list[dict[str, Any]] = []

    async def tick(container: Any) -> None:
        seen.append(structlog.contextvars.get_contextvars())

    job = Job(tick, JobConfig(name="ticker", schedule="0 0 1 1 *"))
    async with Runtime(database=db_url, jobs=[job]) as rt:
        result = await rt.registry.get("job-ticker")(rt.container).run()
    assert seen == [
        {"run_id": result.run_id, "workflow": "job-ticker", "step": "run-job", "job": "ticker"}
    ]
