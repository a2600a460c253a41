"""Several versions of one scheduled workflow: the newest declares the schedule."""

from __future__ import annotations

from typing import Any

from runtime import Runtime, Schedule, WorkflowContext, workflow


async def test_only_the_newest_version_schedules_its_runs(db_url: str) -> None:
    nightly = Schedule(cron="0 3 * * *", name="nightly")

    async def body(ctx: WorkflowContext[Any]) -> str:
        return str(ctx.version)

    v1 = workflow(name="backup", version="v1", schedules=[nightly])(body)
    v2 = workflow(name="backup", version="v2", schedules=[nightly])(body)
    v10 = workflow(name="backup", version="v10", schedules=[nightly])(body)

    runtime = Runtime(database=db_url, workflows=[v1, v10, v2])
    assert [(s.name, s.workflow, s.version) for s in runtime.schedules] == [
        ("backup:nightly", "backup", "v10")
    ]
    async with runtime as rt:
        stored = await rt.store.list_schedules()
    assert [(s.name, s.active) for s in stored] == [("backup:nightly", True)]
