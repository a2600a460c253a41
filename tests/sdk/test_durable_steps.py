"""``ctx.step``, ``ctx.sleep`` and ``ctx.emit`` through a real ``Runtime``: replay and sagas."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from runtime import (
    Client,
    InputValidationError,
    NonDeterminismError,
    RunFailed,
    RunStatus,
    Runtime,
    StepContext,
    StepFailed,
    StepStatus,
    WorkflowContext,
    create_step,
    workflow,
)
from runtime.testing import ManualClock
from tests.durable.support import Probe, wait_status, wait_until


class Item(BaseModel):
    sku: str
    qty: int


class OrderInput(BaseModel):
    order_id: str
    qty: int


class OrderOutput(BaseModel):
    order_id: str
    total: int


def steps_of(record: Any) -> list[tuple[str, StepStatus, int]]:
    return [(s.name, s.status, s.attempts) for s in record.steps]


async def interrupted(rt: Runtime, flow: Any, probe: Probe, held: str, **kwargs: Any) -> None:
    """Start ``flow`` inline and cut it off (as a crash would) while step ``held`` runs."""
    probe.hold(held)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def drive() -> None:
                await flow(rt.container).run(**kwargs)

            tg.start_soon(drive)
            await probe.entered(held)
            tg.cancel_scope.cancel()
    probe.release(held)  # the next call of the step goes through


# -- a step runs once ---------------------------------------------------------------


async def test_a_step_runs_once_and_returns_its_result_inline(db_url: str) -> None:
    calls: list[str] = []

    async def double(n: int) -> int:
        calls.append("double")
        return n * 2

    @workflow
    async def doubler(ctx: WorkflowContext[Any]) -> dict[str, int]:
        twice = await ctx.step("double", double, ctx.input["n"])
        return {"twice": twice}

    async with Runtime(database=db_url, workflows=[doubler]) as rt:
        with anyio.fail_after(5):
            result = await doubler(rt.container).run(input={"n": 21})
        assert (result.status, result.result, result.errors) == (
            RunStatus.COMPLETED,
            {"twice": 42},
            [],
        )
        assert calls == ["double"]
        record = await rt.workflows.get_run(result.run_id)
        assert record.kind == "durable"
        assert record.output == {"twice": 42}
        assert steps_of(record) == [("double", StepStatus.COMPLETED, 1)]
        assert record.steps[0].output == 42

        with anyio.fail_after(5):
            again = await doubler(rt.container).run(input={"n": 21})
        assert again.run_id != result.run_id
        assert calls == ["double", "double"]


async def test_a_background_run_returns_its_result_through_the_handle(db_url: str) -> None:
    probe = Probe()

    @workflow(name="two_steps")
    async def two(ctx: WorkflowContext[Any]) -> list[str]:
        return [await ctx.step("a", probe.call, "a"), await ctx.step("b", probe.call, "b")]

    async with Runtime(database=db_url, workflows=[two]) as rt:
        handle = await rt.workflows.run("two_steps", {"x": 1})
        assert await handle.result(timeout=5) == ["a", "b"]
        assert await handle.status() is RunStatus.COMPLETED
        assert probe.calls == ["a", "b"]
        record = await rt.workflows.get_run(handle.run_id)
        assert record.input == {"x": 1}
        assert steps_of(record) == [
            ("a", StepStatus.COMPLETED, 1),
            ("b", StepStatus.COMPLETED, 1),
        ]


async def test_result_wakes_promptly_for_a_one_step_run(db_url: str) -> None:
    @workflow
    async def quick(ctx: WorkflowContext[Any]) -> str:
        return await ctx.step("one", lambda: "done")

    async with Runtime(database=db_url, workflows=[quick]) as rt:
        await rt.workflows.run("quick")  # warm up the worker and the store
        started = time.monotonic()
        handle = await rt.workflows.run("quick")
        assert await handle.result(timeout=0.5) == "done"
        assert time.monotonic() - started < 0.5


# -- replay -------------------------------------------------------------------------


async def test_on_replay_completed_steps_are_not_called_again(db_url: str) -> None:
    probe = Probe()

    @workflow(name="abc")
    async def flow(ctx: WorkflowContext[Any]) -> list[str]:
        a = await ctx.step("a", probe.call, "a")
        b = await ctx.step("b", probe.call, "b")
        c = await ctx.step("c", probe.call, "c")
        return [a, b, c]

    async with Runtime(database=db_url, workflows=[flow]) as rt:
        await interrupted(rt, flow, probe, "b", input=None, transaction_id="t-1")
        assert probe.calls == ["a", "b"]
        run = (await rt.workflows.list_runs(workflow="abc")).runs[0]
        assert steps_of(await rt.workflows.get_run(run.id)) == [("a", StepStatus.COMPLETED, 1)]

        with anyio.fail_after(5):
            result = await flow(rt.container).run(transaction_id="t-1")
        assert result.run_id == run.id
        assert result.result == ["a", "b", "c"]
        assert probe.calls == ["a", "b", "b", "c"]

        with anyio.fail_after(5):
            finished = await flow(rt.container).run(transaction_id="t-1")
        assert (finished.run_id, finished.result) == (run.id, ["a", "b", "c"])
        assert probe.calls == ["a", "b", "b", "c"]


async def test_a_step_returning_a_pydantic_model_gets_the_model_back_on_replay(
    db_url: str,
) -> None:
    probe = Probe()
    made: list[str] = []
    seen: list[Any] = []

    async def pick(sku: str) -> Item:
        made.append(sku)
        return Item(sku=sku, qty=2)

    @workflow(name="picker")
    async def picker(ctx: WorkflowContext[Any]) -> dict[str, Any]:
        item = await ctx.step("pick", pick, "sku-1")
        seen.append(item)
        await ctx.step("gate", probe.call, "gate")
        return {"sku": item.sku, "qty": item.qty}

    async with Runtime(database=db_url, workflows=[picker]) as rt:
        await interrupted(rt, picker, probe, "gate", transaction_id="p-1")
        with anyio.fail_after(5):
            result = await picker(rt.container).run(transaction_id="p-1")
        assert result.result == {"sku": "sku-1", "qty": 2}
        assert made == ["sku-1"]
        assert seen == [Item(sku="sku-1", qty=2), Item(sku="sku-1", qty=2)]
        assert all(type(value) is Item for value in seen)
        record = await rt.workflows.get_run(result.run_id)
        assert record.steps[0].output == {"sku": "sku-1", "qty": 2}


async def test_a_changed_step_name_at_a_position_raises_non_determinism(db_path: Path) -> None:
    db_url = f"sqlite:///{db_path}"
    probe = Probe()
    renamed: list[str] = []

    @workflow(name="evolving")
    async def before(ctx: WorkflowContext[Any]) -> str:
        await ctx.step("reserve", probe.call, "reserve")
        return await ctx.step("charge", probe.call, "charge")

    async def book(value: str) -> str:
        renamed.append(value)
        return value

    @workflow(name="evolving")
    async def after(ctx: WorkflowContext[Any]) -> str:
        await ctx.step("book", book, "book")
        return await ctx.step("charge", probe.call, "charge")

    async with Runtime(database=db_url, workflows=[before]) as rt:
        await interrupted(rt, before, probe, "charge", transaction_id="e-1")
    async with Runtime(database=db_url, workflows=[after]) as rt:
        with anyio.fail_after(5), pytest.raises((NonDeterminismError, StepFailed)) as info:
            await after(rt.container).run(transaction_id="e-1")
        assert "'reserve'" in str(info.value) and "'book'" in str(info.value)
        if isinstance(info.value, StepFailed):
            assert info.value.error_type == "NonDeterminismError"
        run = (await rt.workflows.list_runs(workflow="evolving")).runs[0]
        record = await rt.workflows.get_run(run.id)
        assert record.error is not None
        assert record.error.type == "NonDeterminismError"
        assert "'reserve'" in record.error.message and "'book'" in record.error.message
        assert renamed == []
        assert probe.calls == ["reserve", "charge"]


# -- step options -------------------------------------------------------------------


async def test_max_retries_and_retry_interval(db_url: str) -> None:
    probe = Probe()
    probe.fail("flaky", 2)

    @workflow
    async def retrying(ctx: WorkflowContext[Any]) -> str:
        return await ctx.step("flaky", probe.call, "flaky", max_retries=2, retry_interval=0.01)

    async with Runtime(database=db_url, workflows=[retrying]) as rt:
        with anyio.fail_after(5):
            result = await retrying(rt.container).run()
        assert result.result == "flaky"
        assert probe.calls == ["flaky", "flaky", "flaky"]
        record = await rt.workflows.get_run(result.run_id)
        assert steps_of(record) == [("flaky", StepStatus.COMPLETED, 3)]


async def test_a_step_that_fails_more_than_its_retries_fails_the_run(db_url: str) -> None:
    probe = Probe()
    probe.fail("flaky", 5)

    @workflow
    async def retrying(ctx: WorkflowContext[Any]) -> str:
        return await ctx.step("flaky", probe.call, "flaky", max_retries=1, retry_interval=0.01)

    async with Runtime(database=db_url, workflows=[retrying]) as rt:
        with anyio.fail_after(5), pytest.raises(StepFailed) as info:
            await retrying(rt.container).run()
        assert (info.value.step, info.value.error_type, info.value.message) == (
            "flaky",
            "RuntimeError",
            "flaky broke",
        )
        assert probe.calls == ["flaky", "flaky"]
        record = await rt.workflows.get_run(info.value.run_id or "")
        assert record.status is RunStatus.FAILED
        assert steps_of(record) == [("flaky", StepStatus.FAILED, 2)]
        assert record.steps[0].error is not None
        assert record.steps[0].error.message == "flaky broke"


async def test_no_retries_by_default(db_url: str) -> None:
    probe = Probe()
    probe.fail("once", 1)

    @workflow
    async def strict(ctx: WorkflowContext[Any]) -> str:
        return await ctx.step("once", probe.call, "once")

    async with Runtime(database=db_url, workflows=[strict]) as rt:
        with anyio.fail_after(5):
            result = await strict(rt.container).run(throw_on_error=False)
        assert result.status is RunStatus.FAILED
        assert probe.calls == ["once"]


async def test_ctx_step_durations_may_be_timedeltas(db_url: str) -> None:
    """Bug: ``ctx.step(..., timeout=timedelta(...), retry_interval=timedelta(...))`` created
    the run and then failed it with ``DefinitionError: '<=' not supported between
    'datetime.timedelta' and 'int'``; every duration may be seconds or a timedelta."""
    probe = Probe()
    probe.fail("flaky", 1)

    async def forever() -> None:
        await anyio.Event().wait()

    @workflow
    async def timed(ctx: WorkflowContext[Any]) -> str:
        out: str = await ctx.step(
            "flaky",
            probe.call,
            "flaky",
            max_retries=1,
            retry_interval=timedelta(milliseconds=10),
            timeout=timedelta(seconds=5),
        )
        try:
            await ctx.step("forever", forever, timeout=timedelta(milliseconds=50))
        except StepFailed as failed:
            return f"{out}, then {failed.error_type}"
        return out

    async with Runtime(database=db_url, workflows=[timed]) as rt:
        with anyio.fail_after(5):
            result = await timed(rt.container).run(throw_on_error=False)
        record = await rt.workflows.get_run(result.run_id)
    assert result.result == "flaky, then StepTimeoutError"
    assert steps_of(record)[0] == ("flaky", StepStatus.COMPLETED, 2)


async def test_a_bad_ctx_step_option_names_the_step(db_url: str) -> None:
    @workflow
    async def bad(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("charge", time.time, timeout="soon")

    async with Runtime(database=db_url, workflows=[bad]) as rt:
        with anyio.fail_after(5):
            result = await bad(rt.container).run(throw_on_error=False)
    assert result.status is RunStatus.FAILED
    assert result.errors[0].message == (
        "ctx.step('charge'): timeout must be seconds (a number) or a timedelta, got 'soon'"
    )


async def test_a_step_past_its_timeout_is_cancelled_and_fails(db_url: str) -> None:
    async def forever() -> None:
        await anyio.Event().wait()

    @workflow
    async def slow(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("forever", forever, timeout=0.05)

    async with Runtime(database=db_url, workflows=[slow]) as rt:
        with anyio.fail_after(5):
            result = await slow(rt.container).run(throw_on_error=False)
        assert result.status is RunStatus.FAILED
        assert (result.errors[0].step, result.errors[0].type) == ("forever", "StepTimeoutError")
        record = await rt.workflows.get_run(result.run_id)
        assert steps_of(record) == [("forever", StepStatus.FAILED, 1)]
        assert record.error is not None
        assert record.error.type == "StepTimeoutError"


async def test_result_errors_list_a_failed_step_once(db_url: str) -> None:
    probe = Probe()
    probe.fail("ship")
    checkout = saga(probe)
    async with Runtime(database=db_url, workflows=[checkout]) as rt:
        with anyio.fail_after(5):
            result = await checkout(rt.container).run(throw_on_error=False)
        assert result.status is RunStatus.FAILED
        assert [(e.step, e.type, e.message) for e in result.errors] == [
            ("ship", "RuntimeError", "ship broke"),
        ]


async def test_an_unknown_step_option_is_refused(db_url: str) -> None:
    @workflow
    async def odd(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("x", lambda: 1, retries=3)

    async with Runtime(database=db_url, workflows=[odd]) as rt:
        with anyio.fail_after(5):
            result = await odd(rt.container).run(throw_on_error=False)
        assert result.status is RunStatus.FAILED
        assert result.errors[0].type == "DefinitionError"
        assert "retries" in result.errors[0].message


# -- compensation -------------------------------------------------------------------


def saga(probe: Probe, *, catch: bool = False) -> Any:
    """reserve (compensate=), charge (a create_step step with .compensate), ship (fails)."""

    @create_step("charge")
    async def charge(amount: int, ctx: StepContext) -> dict[str, int]:
        await probe.call("charge")
        return {"charged": amount}

    @charge.compensate
    async def refund(charged: dict[str, int], ctx: StepContext) -> None:
        await probe.call(f"refund {charged['charged']}")

    @workflow(name="checkout")
    async def checkout(ctx: WorkflowContext[Any]) -> str:
        await ctx.step("reserve", probe.call, "reserve", compensate=probe.undo)
        await ctx.step(charge, 30)
        try:
            await ctx.step("ship", probe.call, "ship")
        except StepFailed as exc:
            if not catch:
                raise
            return f"shipping later: {exc.message}"
        return "shipped"

    return checkout


async def test_a_failing_step_rolls_back_both_kinds_of_compensation_in_reverse(
    db_url: str,
) -> None:
    probe = Probe()
    probe.fail("ship")
    checkout = saga(probe)
    async with Runtime(database=db_url, workflows=[checkout]) as rt:
        with anyio.fail_after(5), pytest.raises(StepFailed) as info:
            await checkout(rt.container).run()
        assert (info.value.step, info.value.message) == ("ship", "ship broke")
        assert probe.calls == ["reserve", "charge", "ship", "refund 30", "undo reserve"]
        record = await rt.workflows.get_run(info.value.run_id or "")
        assert record.status is RunStatus.FAILED
        assert record.error is not None
        assert (record.error.step, record.error.message) == ("ship", "ship broke")
        assert steps_of(record) == [
            ("reserve", StepStatus.COMPENSATED, 1),
            ("charge", StepStatus.COMPENSATED, 1),
            ("ship", StepStatus.FAILED, 1),
        ]


async def test_the_workflow_may_catch_step_failed_and_go_on(db_url: str) -> None:
    probe = Probe()
    probe.fail("ship")
    checkout = saga(probe, catch=True)
    async with Runtime(database=db_url, workflows=[checkout]) as rt:
        handle = await rt.workflows.run(checkout)
        assert await handle.result(timeout=5) == "shipping later: ship broke"
        assert probe.calls == ["reserve", "charge", "ship"]
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.COMPLETED
        assert steps_of(record) == [
            ("reserve", StepStatus.COMPLETED, 1),
            ("charge", StepStatus.COMPLETED, 1),
            ("ship", StepStatus.FAILED, 1),
        ]


async def test_a_background_run_that_fails_raises_run_failed_from_result(db_url: str) -> None:
    probe = Probe()
    probe.fail("ship")
    checkout = saga(probe)
    async with Runtime(database=db_url, workflows=[checkout]) as rt:
        handle = await rt.workflows.run("checkout")
        with pytest.raises(RunFailed) as info:
            await handle.result(timeout=5)
        assert (info.value.run_id, info.value.status) == (handle.run_id, "failed")
        assert info.value.error is not None
        assert (info.value.error.step, info.value.error.message) == ("ship", "ship broke")
        assert probe.calls == ["reserve", "charge", "ship", "refund 30", "undo reserve"]


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
        assert steps_of(record) == [
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
        assert steps_of(record) == [
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
