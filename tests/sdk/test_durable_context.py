"""Events a durable workflow emits are published once: not lost, not doubled on replay."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from runtime import Runtime, StepFailed, WorkflowContext, workflow

pytestmark = pytest.mark.anyio


async def names_of_events(rt: Runtime) -> list[str]:
    page = await rt.store.list_events(limit=100)
    return [e.name for e in page.items]


async def test_event_emitted_before_a_failing_step_is_published(db_url: str) -> None:
    """Bug: events ``ctx.emit``-ed before a step that failed (and was caught) were taken
    with that step's failed attempt and dropped, so the completed run never published
    them; now the event is published once, when the run completes."""

    def boom() -> None:
        raise RuntimeError("nope")

    @workflow
    async def wf_emit(ctx: WorkflowContext) -> dict[str, Any]:
        ctx.emit("audit.before", {"n": 1})
        with contextlib.suppress(StepFailed):
            await ctx.step("boom", boom)
        return {"done": True}

    async with Runtime(db_url, workflows=[wf_emit], interval=0.1) as rt:
        handle = await rt.workflows.run("wf_emit", {})
        assert await handle.result(timeout=2) == {"done": True}
        assert await names_of_events(rt) == ["audit.before"]


async def test_replayed_run_does_not_publish_events_twice(db_url: str) -> None:
    """Bug: on replay (after ``ctx.sleep``) an event emitted before a memoized step was
    staged again with the next checkpoint, in another slot, and published twice; now each
    event is published once."""

    async def charge() -> str:
        return "charged"

    @workflow
    async def napping(ctx: WorkflowContext) -> str:
        ctx.emit("before.step", {})
        await ctx.step("charge", charge)
        ctx.emit("before.sleep", {})
        await ctx.sleep("nap", 0.2)
        ctx.emit("after.sleep", {})
        return "done"

    async with Runtime(db_url, workflows=[napping], interval=0.1) as rt:
        handle = await rt.workflows.run("napping", {})
        assert await handle.result(timeout=2.5) == "done"
        names = await names_of_events(rt)
    assert sorted(names) == ["after.sleep", "before.sleep", "before.step"]
