"""Calling a step: attempts, retries, timeouts, sync functions, signatures, the idempotency key."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepContext,
    StepError,
    StepStatus,
    StepTimeoutError,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)
from tests.helpers.definitions import FAST, run_inline

pytestmark = pytest.mark.anyio


class Ticker:
    """An async task that counts ticks; a blocked event loop stops the count."""

    def __init__(self) -> None:
        self.ticks = 0
        self.during: list[int] = []

    async def run(self) -> None:
        while True:
            await anyio.sleep(0.01)
            self.ticks += 1

    def blocking(self, *_: Any) -> str:
        """A sync step body: blocks its thread for 0.5 s and notes the ticks meanwhile."""
        before = self.ticks
        time.sleep(0.5)
        self.during.append(self.ticks - before)
        return "slept"


def composition_flow(ticker: Ticker) -> Any:
    step = create_step("blocking", ticker.blocking)
    return create_workflow("sync-step", lambda i: WorkflowResponse(step(i)))


def durable_flow(ticker: Ticker) -> Any:
    @workflow(name="sync-step")
    async def flow(ctx: WorkflowContext) -> Any:
        return await ctx.step("blocking", ticker.blocking)

    return flow


@pytest.mark.parametrize("make", [composition_flow, durable_flow], ids=["composition", "durable"])
async def test_blocking_sync_step_does_not_block_the_loop(db_url: str, make: Any) -> None:
    """Bug: a sync step function was called on the event loop, so a ``time.sleep`` in it
    froze every other task (other runs, the heartbeat, timeouts); now it runs in a thread
    and a concurrent task keeps ticking."""
    ticker = Ticker()
    wf = make(ticker)
    async with (
        Runtime(db_url, workflows=[wf], background=False) as rt,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(ticker.run)
        with anyio.fail_after(2):
            result = await wf(rt.container).run(input={})
        tg.cancel_scope.cancel()
    assert result.status is RunStatus.COMPLETED
    assert result.result == "slept"
    # ~50 ticks of 10 ms fit in 0.5 s; a blocked loop would give 0.
    assert ticker.during[0] >= 10


async def test_sync_step_past_its_timeout_fails_promptly(db_url: str) -> None:
    """Bug: a sync step's ``timeout`` could not interrupt it (it blocked the loop, so the
    deadline was never checked until it returned, and then it counted as a success); now
    the attempt fails with StepTimeoutError well before the blocking call ends."""

    def stuck(inp: Any) -> str:
        time.sleep(0.6)
        return "too late"

    step = create_step("stuck", stuck, timeout=0.1)
    wf = create_workflow("sync-timeout", lambda i: WorkflowResponse(step(i)))
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        began = time.monotonic()
        with anyio.fail_after(2):
            result = await wf(rt.container).run(input={}, throw_on_error=False)
        elapsed = time.monotonic() - began
    assert result.status is RunStatus.FAILED
    assert result.errors[0].type == "StepTimeoutError"
    assert elapsed < 0.4


# -- retries and timeouts ----------------------------------------------------------


async def test_a_step_is_retried_and_succeeds_on_its_third_attempt(rt: Runtime) -> None:
    attempts: list[int] = []
    seen_on_third: list[Any] = []

    @create_step("flaky", max_retries=2, retry_interval=FAST)
    async def flaky(input: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} down")
        record = await ctx.container.resolve("workflows").get_run(ctx.run_id)
        seen_on_third.append(
            [(s.status, s.attempts, s.error and s.error.message) for s in record.steps]
        )
        return "ok"

    result = await run_inline(create_workflow("retried", lambda input: flaky(input)), rt)

    assert (result.status, result.result, result.errors) == (RunStatus.COMPLETED, "ok", [])
    assert attempts == [1, 2, 3]
    # Each failed attempt was recorded before the next one started.
    assert seen_on_third == [[(StepStatus.RUNNING, 2, "attempt 2 down")]]
    record = await rt.workflows.get_run(result.run_id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.COMPLETED, 3)]


async def test_a_step_is_not_retried_by_default(rt: Runtime) -> None:
    calls: list[int] = []

    @create_step("once")
    async def once(input: Any) -> None:
        calls.append(1)
        raise ValueError("nope")

    result = await run_inline(
        create_workflow("no-retry", lambda input: once(input)), rt, throw_on_error=False
    )

    assert calls == [1]
    assert result.status is RunStatus.FAILED
    record = await rt.workflows.get_run(result.run_id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.FAILED, 1)]


async def test_a_step_that_keeps_failing_fails_after_its_retries(rt: Runtime) -> None:
    calls: list[int] = []

    @create_step("doomed", max_retries=3, retry_interval=FAST)
    async def doomed(input: Any, ctx: StepContext) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError(f"failure {ctx.attempt}")

    result = await run_inline(
        create_workflow("doomed-wf", lambda input: doomed(input)), rt, throw_on_error=False
    )

    assert calls == [1, 2, 3, 4]
    assert result.status is RunStatus.FAILED
    assert result.errors == [
        StepError(
            step="doomed",
            type="RuntimeError",
            message="failure 4",
            traceback=result.errors[0].traceback,
        )
    ]
    record = await rt.workflows.get_run(result.run_id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.FAILED, 4)]
    assert record.error is not None and record.error.message == "failure 4"


async def test_a_timeout_cancels_the_step_and_counts_as_a_failed_attempt(rt: Runtime) -> None:
    attempts: list[int] = []
    cancelled: list[int] = []

    @create_step("slow-then-fast", max_retries=1, retry_interval=FAST, timeout=0.05)
    async def slow_then_fast(input: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            try:
                await anyio.Event().wait()  # never set: only the timeout ends this
            except anyio.get_cancelled_exc_class():
                cancelled.append(ctx.attempt)
                raise
        return "fast"

    result = await run_inline(create_workflow("timeout-retry", lambda i: slow_then_fast(i)), rt)

    assert (result.status, result.result) == (RunStatus.COMPLETED, "fast")
    assert attempts == [1, 2]
    assert cancelled == [1]
    record = await rt.workflows.get_run(result.run_id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.COMPLETED, 2)]


async def test_a_step_past_its_timeout_fails_with_a_step_timeout_error(rt: Runtime) -> None:
    @create_step("hangs", timeout=0.05)
    async def hangs(input: Any) -> None:
        await anyio.Event().wait()

    result = await run_inline(
        create_workflow("timeout-fail", lambda i: hangs(i)), rt, throw_on_error=False
    )

    assert result.status is RunStatus.FAILED
    assert [(e.step, e.type) for e in result.errors] == [("hangs", "StepTimeoutError")]
    assert "timeout" in result.errors[0].message
    record = await rt.workflows.get_run(result.run_id)
    assert record.steps[0].status is StepStatus.FAILED
    assert record.steps[0].error is not None
    assert record.steps[0].error.type == "StepTimeoutError"


async def test_run_raises_step_timeout_error_for_a_timed_out_step(rt: Runtime) -> None:
    @create_step("hangs", timeout=0.05)
    async def hangs(input: Any) -> None:
        await anyio.Event().wait()

    with pytest.raises(StepTimeoutError) as caught:
        await run_inline(create_workflow("timeout-raise", lambda i: hangs(i)), rt)

    assert caught.value.step == "hangs"
    assert isinstance(caught.value, TimeoutError)


# -- step context ----------------------------------------------------------------------------


async def test_the_idempotency_key_is_stable_across_retries(rt: Runtime) -> None:
    seen: list[tuple[int, str, str, str]] = []

    @create_step("pay", max_retries=2, retry_interval=FAST)
    async def pay(input: Any, ctx: StepContext) -> str:
        seen.append((ctx.attempt, ctx.idempotency_key, ctx.step, ctx.workflow))
        if ctx.attempt < 3:
            raise ConnectionError("gateway timeout")
        return ctx.idempotency_key

    @create_step("ship")
    async def ship(input: Any, ctx: StepContext) -> str:
        return ctx.idempotency_key

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse({"pay": pay(input), "ship": ship(input)})

    result = await run_inline(create_workflow("keys", flow), rt)
    other = await run_inline(create_workflow("keys-other", flow), rt)

    key = seen[0][1]
    assert seen[:3] == [(n, key, "pay", "keys") for n in (1, 2, 3)]
    assert result.result == {"pay": key, "ship": result.result["ship"]}
    assert result.result["ship"] != key  # each step has its own key
    assert result.run_id in key
    assert other.result["pay"] != key  # and each run


async def test_a_timeout_error_raised_by_the_step_itself_keeps_its_message(
    rt: Runtime,
) -> None:
    @create_step("upstream")
    async def upstream(input: Any) -> None:
        raise TimeoutError("upstream API timed out")

    result = await run_inline(
        create_workflow("own-timeout", lambda i: upstream(i)), rt, throw_on_error=False
    )

    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("upstream", "TimeoutError", "upstream API timed out")
    ]


async def test_plain_and_partial_signature_step_functions_work(rt: Runtime) -> None:
    def sync_step(value: Any) -> dict[str, Any]:
        return {"doubled": value * 2}

    def no_args() -> str:
        return "constant"

    async def with_ctx(value: Any, ctx: StepContext) -> str:
        return f"{ctx.step}:{value['doubled']}"

    a = create_step("sync", sync_step)
    b = create_step("no-args", no_args)
    c = create_step("with-ctx", with_ctx)

    def flow(input: Any) -> WorkflowResponse:
        doubled = a(input)
        return WorkflowResponse([doubled, b(), c(doubled)])

    result = await run_inline(create_workflow("signatures", flow), rt, 21)

    assert result.result == [{"doubled": 42}, "constant", "with-ctx:42"]


async def test_ctx_only_steps_and_a_compensation_attached_after_the_workflow(rt: Runtime) -> None:
    calls: list[Any] = []

    @create_step("needs-ctx")
    async def needs_ctx(ctx: StepContext) -> str:
        calls.append(("invoke", ctx.step))
        return "made"

    @create_step("breaks")
    async def breaks() -> None:
        raise ValueError("no")

    workflow = create_workflow("late-compensation", lambda: (needs_ctx(), breaks()))

    # Attached after create_workflow: the workflow must still find it, with its arguments.
    @needs_ctx.compensate
    async def undo(made: str, ctx: StepContext) -> None:
        calls.append(("undo", made, ctx.step))

    result = await run_inline(workflow, rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert calls == [("invoke", "needs-ctx"), ("undo", "made", "needs-ctx")]


pytestmark = pytest.mark.anyio


async def test_two_steps_of_one_name_get_distinct_keys(db_url: str) -> None:
    """Bug: the key was ``run_id:step_name``, so two durable steps of one name in one run
    shared it and an external API would treat the second charge as a duplicate of the
    first; now each gets ``f"{run_id}:{seq}"``."""
    keys: list[tuple[Any, str]] = []

    @create_step("charge")
    async def charge(item: Any, ctx: StepContext) -> Any:
        keys.append((item, ctx.idempotency_key))
        return item

    @workflow
    async def two_charges(ctx: WorkflowContext) -> list[Any]:
        return [await ctx.step(charge, "book"), await ctx.step(charge, "pen")]

    async with Runtime(db_url, workflows=[two_charges], background=False) as rt:
        result = await two_charges(rt.container).run(input={})
    assert result.status is RunStatus.COMPLETED
    run_id = result.run_id
    assert keys == [("book", f"{run_id}:1"), ("pen", f"{run_id}:2")]


async def test_key_is_stable_across_retries_of_one_step(db_url: str) -> None:
    """Bug guard: the per-step key must not change between attempts of one step (it is
    what makes a retried external call exactly-once); it is ``f"{run_id}:{seq}"``."""
    seen: list[tuple[int, str]] = []

    async def flaky(ctx: StepContext) -> str:
        seen.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt == 1:
            raise RuntimeError("transient")
        return "ok"

    @create_step("flaky", max_retries=2, retry_interval=0.01)
    async def flaky_step(inp: Any, ctx: StepContext) -> str:
        return await flaky(ctx)

    @workflow
    async def retried(ctx: WorkflowContext) -> list[Any]:
        first = await ctx.step("flaky", lambda: "first")
        return [first, await ctx.step(flaky_step, None)]

    async with Runtime(db_url, workflows=[retried], background=False) as rt:
        result = await retried(rt.container).run(input={})
    assert result.status is RunStatus.COMPLETED
    assert result.result == ["first", "ok"]
    key = f"{result.run_id}:2"
    assert seen == [(1, key), (2, key)]
