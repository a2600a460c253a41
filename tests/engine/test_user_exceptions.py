"""What a step's code raises is the step's failure, whatever it raises.

A ``CancelledError`` the step raises itself (no scope of ours was cancelled),
``SystemExit`` (``sys.exit()`` in a step) and ``KeyboardInterrupt`` are failed
attempts, retried per ``max_retries`` and then rolled back, and the worker goes
on with the next run. A step that outlives its ``timeout`` (it swallowed the
cancellation, or blocked the loop) failed, whatever it returned.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from runtime import (
    RunFailed,
    RunStatus,
    Runtime,
    StepStatus,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    transform,
    when,
    workflow,
)
from runtime.models import RunRecord


def raise_cancelled() -> None:
    raise asyncio.CancelledError()


def raise_system_exit() -> None:
    sys.exit(3)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


RAISERS: dict[str, tuple[Callable[[], None], str]] = {
    "cancelled": (raise_cancelled, "CancelledError"),
    "system-exit": (raise_system_exit, "SystemExit"),
    "keyboard-interrupt": (raise_keyboard_interrupt, "KeyboardInterrupt"),
}
MESSAGES = {
    "cancelled": "raised by the code of step 'bad', which was not being cancelled",
    "system-exit": "sys.exit(3) in the code of step 'bad'",
    "keyboard-interrupt": "raised by the code of step 'bad'",
}


def build(style: str, raiser: Callable[[], None], sync: bool, calls: list[str]) -> Any:
    """A workflow whose step ``a`` completes (and compensates), then ``bad`` raises."""

    async def a() -> str:
        calls.append("a")
        return "a"

    async def undo_a(_: Any) -> None:
        calls.append("undo a")

    def bad_sync() -> None:
        calls.append("bad")
        raiser()

    async def bad_async() -> None:
        calls.append("bad")
        raiser()

    bad = bad_sync if sync else bad_async
    if style == "composition":
        step_a = create_step("a", a, undo_a)
        step_bad = create_step("bad", bad, max_retries=1, retry_interval=0.01)

        def flow(_: Any) -> WorkflowResponse:
            step_a()
            return WorkflowResponse(step_bad())

        return create_workflow("be-bad", flow)

    @workflow(name="be-bad")
    async def durable_flow(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("a", a, compensate=undo_a)
        await ctx.step("bad", bad, max_retries=1, retry_interval=0.01)

    return durable_flow


async def fails_and_the_worker_goes_on(db_url: str, bad: Any, name: str) -> RunRecord:
    """Run workflow ``name`` in the background: it must fail, and a run started after it
    must still complete (the worker survived); the failed run's record."""

    @create_step("fine")
    async def fine() -> str:
        return "ok"

    ok = create_workflow("ok1", lambda: WorkflowResponse(fine()))
    async with Runtime(database=db_url, workflows=[bad, ok]) as rt:
        failing = await rt.workflows.run(name)
        with anyio.fail_after(5), pytest.raises(RunFailed):
            await failing.result()
        following = await rt.workflows.run("ok1")
        with anyio.fail_after(5):
            assert await following.result() == "ok"
        return await rt.workflows.get_run(failing.run_id)


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("style", ["composition", "durable"])
@pytest.mark.parametrize("kind", list(RAISERS))
async def test_a_step_raising_a_base_exception_fails_and_the_worker_goes_on(
    db_url: str, kind: str, style: str, sync: bool
) -> None:
    """Bug: a CancelledError raised by a step's own code (not a cancellation) unwound the
    worker: the run was released ``pending`` ('interrupted') and the next run never ran;
    a SystemExit or KeyboardInterrupt from a step killed the whole service. Now each is a
    failed attempt (retried, then rolled back) naming the exception, and the worker
    carries on with the next run."""
    raiser, type_name = RAISERS[kind]
    calls: list[str] = []
    bad = build(style, raiser, sync, calls)

    record = await fails_and_the_worker_goes_on(db_url, bad, "be-bad")
    assert record.status is RunStatus.FAILED
    assert record.error is not None
    assert (record.error.step, record.error.type) == ("bad", type_name)
    assert record.error.message == MESSAGES[kind]
    assert calls == ["a", "bad", "bad", "undo a"]  # retried once, then rolled back
    bad_step = next(s for s in record.steps if s.name == "bad")
    assert (bad_step.status, bad_step.attempts) == (StepStatus.FAILED, 2)


async def test_a_cancelled_error_from_a_cancelled_future_is_a_failure(db_url: str) -> None:
    """A step awaiting something another party cancelled (a future, a client's task) gets
    a CancelledError although the step itself was not cancelled: a failed attempt."""

    @create_step("awaits-cancelled")
    async def awaits_cancelled() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    wf = create_workflow("be-cancel", lambda: WorkflowResponse(awaits_cancelled()))
    async with Runtime(database=db_url, workflows=[wf], background=False) as rt:
        with anyio.fail_after(5):
            result = await wf(rt.container).run(throw_on_error=False)
    assert result.status is RunStatus.FAILED
    assert [(e.step, e.type) for e in result.errors] == [("awaits-cancelled", "CancelledError")]


async def test_a_real_cancellation_still_cancels_the_step(db_url: str) -> None:
    """The caller's own cancellation is not a step failure: it unwinds, and the run is
    handed back (``pending``) to be resumed, as before."""
    entered = anyio.Event()

    @create_step("waits")
    async def waits() -> None:
        entered.set()
        await anyio.sleep_forever()

    wf = create_workflow("cancel-me", lambda: WorkflowResponse(waits()))
    async with Runtime(database=db_url, workflows=[wf], background=False) as rt:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wf(rt.container).run)
            with anyio.fail_after(5):
                await entered.wait()
            tg.cancel_scope.cancel()
        page = await rt.workflows.list_runs(workflow="cancel-me")
    (record,) = page.runs
    assert record.status is RunStatus.PENDING
    assert record.error is None


async def swallow_cancellation() -> str:
    try:
        await anyio.sleep_forever()
    except asyncio.CancelledError:
        return "swallowed"
    return "unreachable"


async def block_the_loop() -> str:
    time.sleep(0.3)  # noqa: ASYNC251 - the bug under test: an async step that blocks
    return "blocked"


@pytest.mark.parametrize("body", [swallow_cancellation, block_the_loop])
async def test_a_step_past_its_timeout_fails_even_if_it_returns(
    db_url: str, body: Callable[[], Any]
) -> None:
    """Bug: an async step that swallowed its timeout's cancellation (and returned), or that
    blocked the event loop past its timeout, was recorded ``completed``; its timeout was
    exceeded, so it is a timed-out failed attempt."""
    step = create_step("late", body, timeout=0.05)
    wf = create_workflow("late", lambda: WorkflowResponse(step()))
    async with Runtime(database=db_url, workflows=[wf], background=False) as rt:
        with anyio.fail_after(5):
            result = await wf(rt.container).run(throw_on_error=False)
        record = await rt.workflows.get_run(result.run_id)
    assert result.status is RunStatus.FAILED
    assert [(e.step, e.type) for e in result.errors] == [("late", "StepTimeoutError")]
    assert record.steps[0].status is StepStatus.FAILED


@pytest.mark.parametrize("kind", list(RAISERS))
async def test_a_durable_workflow_raising_a_base_exception_fails_and_rolls_back(
    db_url: str, kind: str
) -> None:
    """Bug: the same exceptions raised by a durable workflow's own code (between steps)
    unwound the worker or stopped the service; now the run fails and rolls back."""
    raiser, type_name = RAISERS[kind]
    calls: list[str] = []

    async def a() -> str:
        calls.append("a")
        return "a"

    async def undo_a(_: Any) -> None:
        calls.append("undo a")

    @workflow(name="body-raises")
    async def body_raises(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("a", a, compensate=undo_a)
        raiser()

    @workflow(name="ok1")
    async def ok(ctx: WorkflowContext[Any]) -> str:
        return "ok"

    async with Runtime(database=db_url, workflows=[body_raises, ok]) as rt:
        failing = await rt.workflows.run("body-raises")
        with anyio.fail_after(5), pytest.raises(RunFailed):
            await failing.result()
        following = await rt.workflows.run("ok1")
        with anyio.fail_after(5):
            assert await following.result() == "ok"
        record = await rt.workflows.get_run(failing.run_id)
    assert record.status is RunStatus.FAILED
    assert record.error is not None and record.error.type == type_name
    assert calls == ["a", "undo a"]


@pytest.mark.parametrize("kind", list(RAISERS))
async def test_a_rollback_resumed_by_replay_through_a_base_exception_finishes(
    db_url: str, kind: str
) -> None:
    """Bug: a rollback resumed later (a retry after a failed compensation, a restart after
    a crash mid-rollback) replays the function to learn its compensations; the replay
    caught only ``Exception``, so the ``sys.exit(3)`` that had failed the run came out of
    the Runtime and stopped the service, at every restart. Now the replay stops there,
    as the first run did, and the rollback finishes."""
    raiser, _ = RAISERS[kind]
    undo_fails = [True]
    calls: list[str] = []

    async def a() -> str:
        return "a"

    async def undo_a(_: Any) -> None:
        calls.append("undo a")
        if undo_fails[0]:
            raise RuntimeError("compensation down")

    @workflow(name="body-raises")
    async def body_raises(ctx: WorkflowContext[Any]) -> None:
        await ctx.step("a", a, compensate=undo_a)
        raiser()

    async with Runtime(database=db_url, workflows=[body_raises]) as rt:
        failing = await rt.workflows.run("body-raises")
        with anyio.fail_after(5), pytest.raises(RunFailed):
            await failing.result()
        assert await failing.status() is RunStatus.COMPENSATION_FAILED
        undo_fails[0] = False
        await rt.workflows.retry(failing.run_id)  # the rollback resumes, by replay
        with anyio.fail_after(5), pytest.raises(RunFailed):
            await failing.result()
        record = await rt.workflows.get_run(failing.run_id)
    assert record.status is RunStatus.FAILED
    assert calls == ["undo a", "undo a"]  # failed once, then done by the resumed rollback
    assert next(s for s in record.steps if s.name == "a").status is StepStatus.COMPENSATED


def build_computing(place: str, raiser: Callable[[], None], calls: list[str]) -> Any:
    """A composition whose step ``a`` completes, then a ``when``/``transform`` raises."""

    async def a() -> str:
        calls.append("a")
        return "a"

    async def undo_a(_: Any) -> None:
        calls.append("undo a")

    async def b(value: Any) -> str:
        calls.append("b")
        return "b"

    def raising(_: Any) -> Any:
        raiser()

    step_a = create_step("a", a, undo_a)
    step_b = create_step("b", b)

    def flow(_: Any) -> WorkflowResponse:
        done = step_a()
        if place == "when":
            return WorkflowResponse(when({"a": done}, raising).then(lambda: step_b(done)))
        if place == "transform-between":
            return WorkflowResponse(step_b(transform(done, raising)))
        return WorkflowResponse(transform(done, raising))  # computed with a's checkpoint

    return create_workflow("computes-bad", flow)


@pytest.mark.parametrize("place", ["when", "transform-between", "transform-last"])
@pytest.mark.parametrize("kind", list(RAISERS))
async def test_a_when_or_transform_raising_a_base_exception_fails_the_run(
    db_url: str, kind: str, place: str
) -> None:
    """Bug: a ``when`` condition or a ``transform`` function calling ``sys.exit()`` (or
    raising KeyboardInterrupt, or a CancelledError of its own) stopped the Runtime: only
    ``Exception`` was caught around them. Now, as docs/semantics.md says of any user code,
    the run fails, rolls back, and the worker goes on."""
    raiser, type_name = RAISERS[kind]
    calls: list[str] = []
    bad = build_computing(place, raiser, calls)

    record = await fails_and_the_worker_goes_on(db_url, bad, "computes-bad")
    assert record.status is RunStatus.FAILED
    assert record.error is not None and record.error.type == type_name
    assert calls == ["a", "undo a"]
