"""A durable workflow's context beyond steps: input and output models, sleep, emit."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from runtime import (
    Client,
    InputValidationError,
    RunFailed,
    RunStatus,
    Runtime,
    StepFailed,
    StepStatus,
    WorkflowContext,
    workflow,
)
from runtime.testing import ManualClock
from tests.helpers.definitions import Probe, steps_and_attempts
from tests.helpers.waiting import wait_status, wait_until

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


class OrderInput(BaseModel):
    order_id: str
    qty: int


class OrderOutput(BaseModel):
    order_id: str
    total: int


# -- input and output schemas -----------------------------------------------------


def ordering(calls: list[str]) -> Any:
    @workflow(name="place_order", input=OrderInput, output=OrderOutput)
    async def place(ctx: WorkflowContext[OrderInput]) -> dict[str, Any]:
        calls.append(ctx.input.order_id)
        total = await ctx.step("price", lambda qty: qty * 10, ctx.input.qty)
        if ctx.input.order_id == "bad-output":
            return {"order_id": ctx.input.order_id, "total": "lots"}
        return {"order_id": ctx.input.order_id, "total": total}

    return place


async def test_bad_input_is_refused_at_start_and_creates_no_run(db_url: str) -> None:
    calls: list[str] = []
    place = ordering(calls)
    async with Runtime(database=db_url, workflows=[place]) as rt:
        with pytest.raises(InputValidationError, match="place_order"):
            await place(rt.container).run(input={"order_id": "o1", "qty": "three"})
        with pytest.raises(InputValidationError, match="qty"):
            await rt.workflows.run("place_order", {"order_id": "o1"})
        assert (await rt.workflows.list_runs()).runs == []
        assert calls == []


async def test_good_input_reaches_the_function_as_the_model(db_url: str) -> None:
    calls: list[str] = []
    place = ordering(calls)
    async with Runtime(database=db_url, workflows=[place]) as rt:
        handle = await rt.workflows.run("place_order", {"order_id": "o1", "qty": "3"})
        assert await handle.result(timeout=5) == {"order_id": "o1", "total": 30}
        record = await rt.workflows.get_run(handle.run_id)
        assert record.input == {"order_id": "o1", "qty": 3}
        assert calls == ["o1"]


async def test_bad_output_fails_the_run(db_url: str) -> None:
    place = ordering([])
    async with Runtime(database=db_url, workflows=[place]) as rt:
        handle = await rt.workflows.run("place_order", {"order_id": "bad-output", "qty": 1})
        with pytest.raises(RunFailed) as info:
            await handle.result(timeout=5)
        assert info.value.status == "failed"
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.FAILED
        assert record.output is None
        assert record.error is not None
        assert "place_order" in record.error.message and "total" in record.error.message


async def test_a_client_run_with_bad_input_fails_with_the_reason(db_url: str) -> None:
    calls: list[str] = []
    place = ordering(calls)
    async with Runtime(database=db_url, workflows=[place]), Client(db_url) as client:
        handle = await client.run("place_order", {"order_id": "o1", "qty": "three"})
        with pytest.raises(RunFailed) as info:
            await handle.result(timeout=5)
        assert info.value.status == "failed"
        assert info.value.error is not None
        assert info.value.error.type == "InputValidationError"
        assert "qty" in info.value.error.message
        assert calls == []


async def test_steps_are_keyed_by_sequence_so_a_name_may_repeat(db_url: str) -> None:
    sent: list[int] = []

    async def send(user: int) -> int:
        sent.append(user)
        return user

    @workflow
    async def bulk(ctx: WorkflowContext[Any]) -> list[int]:
        return [await ctx.step("send", send, user) for user in ctx.input["users"]]

    async with Runtime(database=db_url, workflows=[bulk]) as rt:
        handle = await rt.workflows.run(bulk, {"users": [7, 8, 9]})
        assert await handle.result(timeout=5) == [7, 8, 9]
        record = await rt.workflows.get_run(handle.run_id)
        assert [(s.seq, s.name, s.output) for s in record.steps] == [
            (1, "send", 7),
            (2, "send", 8),
            (3, "send", 9),
        ]
        assert sent == [7, 8, 9]


# -- ctx.sleep ----------------------------------------------------------------------


async def test_sleep_parks_the_run_without_holding_the_worker(db_url: str) -> None:
    clock = ManualClock()
    probe = Probe()

    @workflow
    async def napper(ctx: WorkflowContext[Any]) -> list[str]:
        first = await ctx.step("before", probe.call, "before")
        await ctx.sleep("nap", 3600)
        return [first, await ctx.step("after", probe.call, "after")]

    async with Runtime(database=db_url, workflows=[napper], clock=clock) as rt:
        start = clock.now()
        handle = await rt.workflows.run(napper)
        record = await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        await wait_until(lambda: _is(rt.worker.in_flight, 0))
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.SLEEPING
        assert record.owner_id is None
        assert record.wake_at == start + _seconds(3600)
        assert record.available_at == start + _seconds(3600)
        assert steps_and_attempts(record) == [
            ("before", StepStatus.COMPLETED, 1),
            ("nap", StepStatus.RUNNING, 1),
        ]
        assert probe.calls == ["before"]

        clock.advance(3599)
        rt.worker.poke()
        await anyio.sleep(0.05)
        assert await handle.status() is RunStatus.SLEEPING

        clock.advance(1)
        rt.worker.poke()
        assert await handle.result(timeout=5) == ["before", "after"]
        assert probe.calls == ["before", "after"]
        record = await rt.workflows.get_run(handle.run_id)
        assert steps_and_attempts(record) == [
            ("before", StepStatus.COMPLETED, 1),
            ("nap", StepStatus.COMPLETED, 1),
            ("after", StepStatus.COMPLETED, 1),
        ]


async def test_sleep_inline_waits_and_continues(db_url: str) -> None:
    @workflow
    async def short_nap(ctx: WorkflowContext[Any]) -> str:
        await ctx.sleep("nap", 0.05)
        return await ctx.step("after", lambda: "awake")

    async with Runtime(database=db_url, workflows=[short_nap]) as rt:
        started = time.monotonic()
        with anyio.fail_after(5):
            result = await short_nap(rt.container).run()
        assert result.result == "awake"
        assert time.monotonic() - started >= 0.05


# -- ctx.emit -----------------------------------------------------------------------


async def test_emitted_events_are_published_only_when_the_run_completes(db_url: str) -> None:
    probe = Probe()

    @workflow
    async def notifier(ctx: WorkflowContext[Any]) -> str:
        ctx.emit("order.placed", {"id": ctx.input["id"]})
        await ctx.step("gate", probe.call, "gate")
        ctx.emit("order.confirmed", {"id": ctx.input["id"]})
        return "ok"

    async with Runtime(database=db_url, workflows=[notifier]) as rt:
        probe.hold("gate")
        handle = await rt.workflows.run(notifier, {"id": "o1"})
        with anyio.fail_after(5):
            await probe.entered("gate")
        assert await _event_names(rt) == []
        probe.release("gate")
        assert await handle.result(timeout=5) == "ok"
        events = (await rt.store.list_events(limit=10)).items
        assert sorted((e.name, e.data["id"], e.source_run_id) for e in events) == [
            ("order.confirmed", "o1", handle.run_id),
            ("order.placed", "o1", handle.run_id),
        ]


async def test_emitted_events_are_dropped_when_the_run_fails(db_url: str) -> None:
    probe = Probe()
    probe.fail("boom")

    @workflow
    async def notifier(ctx: WorkflowContext[Any]) -> str:
        ctx.emit("order.placed", {"id": "o1"})
        await ctx.step("fine", probe.call, "fine")
        ctx.emit("order.shipping", {"id": "o1"})
        await ctx.step("boom", probe.call, "boom")
        return "ok"

    async with Runtime(database=db_url, workflows=[notifier]) as rt:
        handle = await rt.workflows.run(notifier)
        with pytest.raises(RunFailed):
            await handle.result(timeout=5)
        assert await _event_names(rt) == []


# -- the context ----------------------------------------------------------------------


async def test_the_context_carries_run_id_version_input_and_logger(db_url: str) -> None:
    seen: dict[str, Any] = {}

    @workflow(name="introspect", version="v3", input=OrderInput)
    async def introspect(ctx: WorkflowContext[OrderInput]) -> str:
        seen.update(
            run_id=ctx.run_id,
            version=ctx.version,
            input=ctx.input,
            workflow=ctx.workflow,
            container=ctx.container,
        )
        ctx.logger.info("introspecting", order_id=ctx.input.order_id)
        return "ok"

    async with Runtime(database=db_url, workflows=[introspect]) as rt:
        with anyio.fail_after(5):
            result = await introspect(rt.container).run(input={"order_id": "o9", "qty": 1})
        assert seen == {
            "run_id": result.run_id,
            "version": "v3",
            "input": OrderInput(order_id="o9", qty=1),
            "workflow": "introspect",
            "container": rt.container,
        }
        record = await rt.workflows.get_run(result.run_id)
        assert record.version == "v3"


# -- helpers ---------------------------------------------------------------------------


async def _is(value: int, expected: int) -> bool:
    return value == expected


def _seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


async def _event_names(rt: Runtime) -> list[str]:
    return sorted(e.name for e in (await rt.store.list_events(limit=50)).items)
