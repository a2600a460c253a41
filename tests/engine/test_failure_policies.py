"""A step's permanent failure, skip and continue: what fails at once, what is let through."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    RunFailed,
    RunStatus,
    Runtime,
    StepResponse,
    StepStatus,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)
from tests.helpers.definitions import FAST, run_inline, steps_of

pytestmark = pytest.mark.anyio


async def test_permanent_failure_compensate_input_reaches_the_compensation(db_url: str) -> None:
    """Bug: in a durable workflow, ``permanent_failure(msg, compensate_input=X)`` dropped X
    (only the composition path stored it), so the failed step's own compensation never
    got it on rollback; now the compensation receives X."""
    got: list[Any] = []

    @create_step("charge")
    async def charge(inp: Any) -> StepResponse:
        return StepResponse.permanent_failure("card declined", compensate_input={"hold": "h1"})

    @charge.compensate
    async def release(ci: Any) -> None:
        got.append(ci)

    @workflow
    async def pay(ctx: WorkflowContext) -> dict[str, Any]:
        await ctx.step(charge, {"amount": 5})
        return {}

    async with Runtime(db_url, workflows=[pay], interval=0.1) as rt:
        handle = await rt.workflows.run("pay", {})
        with pytest.raises(RunFailed):
            await handle.result(timeout=2)
        record = await rt.workflows.get_run(handle.run_id)
    assert record.status is RunStatus.FAILED
    assert record.error is not None
    assert record.error.type == "PermanentFailure"
    assert "card declined" in record.error.message
    assert got == [{"hold": "h1"}]


# -- permanent failure, skip, and failure policies -----------------------------------------


async def test_permanent_failure_fails_at_once_and_its_compensation_gets_its_input(
    rt: Runtime,
) -> None:
    calls: list[str] = []

    @create_step("validate")
    async def validate(input: Any) -> str:
        calls.append("validate")
        return "valid"

    @validate.compensate
    async def unvalidate(value: Any) -> None:
        calls.append(f"undo validate {value}")

    @create_step("reserve", max_retries=3, retry_interval=FAST)
    async def reserve(input: Any) -> StepResponse:
        calls.append("reserve")
        return StepResponse.permanent_failure("out of stock", compensate_input={"held": ["r1"]})

    @reserve.compensate
    async def release(held: Any) -> None:
        calls.append(f"release {held}")

    @create_step("never")
    async def never(input: Any) -> None:
        calls.append("never")

    def flow(input: Any) -> None:
        validate(input)
        reserve(input)
        never(input)

    result = await run_inline(create_workflow("permanent", flow), rt, throw_on_error=False)

    assert calls == ["validate", "reserve", "release {'held': ['r1']}", "undo validate valid"]
    assert result.status is RunStatus.FAILED
    assert result.result is None
    assert [(e.step, e.message) for e in result.errors] == [("reserve", "out of stock")]
    record = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status, s.attempts) for s in record.steps] == [
        ("validate", StepStatus.COMPENSATED, 1),
        ("reserve", StepStatus.COMPENSATED, 1),
    ]


async def test_a_failed_steps_own_compensation_gets_none_after_an_exception(
    rt: Runtime,
) -> None:
    received: list[Any] = []

    @create_step("charge")
    async def charge(input: Any) -> None:
        raise ValueError("card declined")

    @charge.compensate
    async def refund(value: Any) -> None:
        received.append(value)

    result = await run_inline(
        create_workflow("own-comp", lambda i: charge(i)), rt, throw_on_error=False
    )

    assert received == [None]
    assert result.status is RunStatus.FAILED


async def test_a_skipped_step_is_marked_and_never_compensated(rt: Runtime) -> None:
    calls: list[str] = []

    @create_step("maybe")
    async def maybe(input: Any) -> StepResponse:
        calls.append("maybe")
        return StepResponse.skip()

    @maybe.compensate
    async def undo_maybe(value: Any) -> None:
        calls.append("undo maybe")

    @create_step("next")
    async def next_step(input: Any) -> None:
        calls.append(f"next got {input['maybe']!r}")
        raise ValueError("later failure")

    def flow(input: Any) -> None:
        out = maybe(input)
        next_step({"maybe": out})

    result = await run_inline(create_workflow("skipped", flow), rt, throw_on_error=False)

    assert calls == ["maybe", "next got None"]
    assert result.status is RunStatus.FAILED
    record = await rt.workflows.get_run(result.run_id)
    assert steps_of(record) == [("maybe", StepStatus.SKIPPED), ("next", StepStatus.FAILED)]


async def test_a_skipped_step_lets_a_run_complete(rt: Runtime) -> None:
    @create_step("skip-me")
    async def skip_me(input: Any) -> StepResponse:
        return StepResponse.skip()

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse({"skipped": skip_me(input)})

    result = await run_inline(create_workflow("skip-ok", flow), rt)

    assert (result.status, result.result, result.errors) == (
        RunStatus.COMPLETED,
        {"skipped": None},
        [],
    )


async def test_skip_on_permanent_failure_completes_the_run_with_the_step_skipped(
    rt: Runtime,
) -> None:
    calls: list[str] = []

    @create_step("optional", skip_on_permanent_failure=True, max_retries=1, retry_interval=FAST)
    async def optional(input: Any) -> None:
        calls.append("optional")
        raise ValueError("optional broke")

    @optional.compensate
    async def undo_optional(value: Any) -> None:
        calls.append("undo optional")

    @create_step("after")
    async def after(input: Any) -> str:
        calls.append(f"after got {input['optional']!r}")
        return "done"

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse(after({"optional": optional(input)}))

    result = await run_inline(create_workflow("skip-policy", flow), rt)

    assert calls == ["optional", "optional", "after got None"]
    assert (result.status, result.result) == (RunStatus.COMPLETED, "done")
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("optional", "ValueError", "optional broke")
    ]
    record = await rt.workflows.get_run(result.run_id)
    assert record.status is RunStatus.COMPLETED
    assert steps_of(record) == [("optional", StepStatus.SKIPPED), ("after", StepStatus.COMPLETED)]
    assert record.steps[0].error is not None
    assert record.steps[0].attempts == 2


async def test_continue_on_permanent_failure_completes_the_run_with_the_step_failed(
    rt: Runtime,
) -> None:
    calls: list[str] = []

    @create_step("notify", continue_on_permanent_failure=True)
    async def notify(input: Any) -> None:
        calls.append("notify")
        raise ConnectionError("mail server down")

    @notify.compensate
    async def unnotify(value: Any) -> None:
        calls.append("undo notify")

    @create_step("finish")
    async def finish(input: Any) -> str:
        calls.append("finish")
        return "finished"

    def flow(input: Any) -> WorkflowResponse:
        notify(input)
        return WorkflowResponse(finish(input))

    result = await run_inline(create_workflow("continue-policy", flow), rt)

    assert calls == ["notify", "finish"]
    assert (result.status, result.result) == (RunStatus.COMPLETED, "finished")
    assert [(e.step, e.type) for e in result.errors] == [("notify", "ConnectionError")]
    record = await rt.workflows.get_run(result.run_id)
    assert record.status is RunStatus.COMPLETED
    assert steps_of(record) == [("notify", StepStatus.FAILED), ("finish", StepStatus.COMPLETED)]
