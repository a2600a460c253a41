"""``ctx.step`` through a real ``Runtime``: runs once, replay, step options, sagas."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from runtime import (
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
from tests.helpers.definitions import Probe, steps_and_attempts


class Item(BaseModel):
    sku: str
    qty: int


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
        assert steps_and_attempts(record) == [("double", StepStatus.COMPLETED, 1)]
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
        assert steps_and_attempts(record) == [
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
        assert steps_and_attempts(await rt.workflows.get_run(run.id)) == [
            ("a", StepStatus.COMPLETED, 1)
        ]

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
        assert steps_and_attempts(record) == [("flaky", StepStatus.COMPLETED, 3)]


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
        assert steps_and_attempts(record) == [("flaky", StepStatus.FAILED, 2)]
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
    assert steps_and_attempts(record)[0] == ("flaky", StepStatus.COMPLETED, 2)


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
        assert steps_and_attempts(record) == [("forever", StepStatus.FAILED, 1)]
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
        assert steps_and_attempts(record) == [
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
        assert steps_and_attempts(record) == [
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
