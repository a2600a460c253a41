"""Compensation: reverse order, compensate inputs, parallel siblings, retries, failures."""

from __future__ import annotations

from typing import Any

import anyio

from runtime import (
    RunStatus,
    Runtime,
    StepContext,
    StepResponse,
    StepStatus,
    create_step,
    create_workflow,
    parallelize,
)
from tests.helpers.definitions import FAST, run_inline, steps_of

# -- compensation ----------------------------------------------------------------------


async def test_compensation_runs_in_reverse_order_of_completion(rt: Runtime) -> None:
    log: list[str] = []

    def recording(name: str, fail: bool = False) -> Any:
        async def invoke(input: Any) -> str:
            log.append(f"do {name}")
            if fail:
                raise ValueError(f"{name} failed")
            return f"{name}-out"

        async def compensate(value: Any) -> None:
            log.append(f"undo {name} ({value})")

        return create_step(name, invoke, compensate=compensate)

    a, b, c, d = recording("a"), recording("b"), recording("c"), recording("d", fail=True)

    def flow(input: Any) -> None:
        a(input)
        b(input)
        c(input)
        d(input)

    result = await run_inline(create_workflow("reverse", flow), rt, throw_on_error=False)

    assert log == [
        "do a",
        "do b",
        "do c",
        "do d",
        "undo d (None)",
        "undo c (c-out)",
        "undo b (b-out)",
        "undo a (a-out)",
    ]
    assert result.status is RunStatus.FAILED
    record = await rt.workflows.get_run(result.run_id)
    assert [s.status for s in record.steps] == [StepStatus.COMPENSATED] * 4


async def test_steps_without_compensation_are_left_alone(rt: Runtime) -> None:
    log: list[str] = []

    @create_step("plain")
    async def plain(input: Any) -> str:
        log.append("plain")
        return "p"

    @create_step("undoable")
    async def undoable(input: Any) -> str:
        log.append("undoable")
        return "u"

    @undoable.compensate
    async def undo(value: Any) -> None:
        log.append(f"undo {value}")

    @create_step("boom")
    async def boom(input: Any) -> None:
        raise ValueError("boom")

    def flow(input: Any) -> None:
        plain(input)
        undoable(input)
        boom(input)

    result = await run_inline(create_workflow("partial-comp", flow), rt, throw_on_error=False)

    assert log == ["plain", "undoable", "undo u"]
    assert result.status is RunStatus.FAILED
    record = await rt.workflows.get_run(result.run_id)
    assert steps_of(record) == [
        ("plain", StepStatus.COMPLETED),
        ("undoable", StepStatus.COMPENSATED),
        ("boom", StepStatus.FAILED),
    ]


async def test_compensate_input_differs_from_output_when_given(rt: Runtime) -> None:
    received: list[Any] = []

    @create_step("reserve")
    async def reserve(input: Any) -> StepResponse:
        return StepResponse({"reservation": "visible"}, compensate_input=["r1", "r2"])

    @reserve.compensate
    async def release(ids: Any) -> None:
        received.append(ids)

    @create_step("fail")
    async def fail(input: Any) -> None:
        raise ValueError(f"saw {input['reservation']}")

    def flow(input: Any) -> None:
        fail(reserve(input))

    result = await run_inline(create_workflow("comp-input", flow), rt, throw_on_error=False)

    assert received == [["r1", "r2"]]
    assert result.errors[0].message == "saw visible"
    record = await rt.workflows.get_run(result.run_id)
    assert record.steps[0].output == {"reservation": "visible"}
    assert record.steps[0].compensate_input == ["r1", "r2"]


async def test_parallel_siblings_finish_before_they_are_compensated(rt: Runtime) -> None:
    log: list[str] = []
    b_failed = anyio.Event()
    a_done = anyio.Event()

    async def undo(value: Any) -> None:
        log.append(f"undo {value}")

    @create_step("pre", compensate=undo)
    async def pre(input: Any) -> str:
        log.append("do pre")
        return "pre"

    @create_step("a", compensate=undo)
    async def a(input: Any) -> str:
        await b_failed.wait()
        log.append("finish a")
        a_done.set()
        return "a"

    @create_step("b", compensate=undo)
    async def b(input: Any) -> str:
        log.append("fail b")
        b_failed.set()
        raise ValueError("b broke")

    @create_step("c", compensate=undo)
    async def c(input: Any) -> str:
        await a_done.wait()
        log.append("finish c")
        return "c"

    @create_step("post", compensate=undo)
    async def post(input: Any) -> str:
        log.append("do post")
        return "post"

    def flow(input: Any) -> None:
        pre(input)
        parallelize(a(input), b(input), c(input))
        post(input)

    result = await run_inline(create_workflow("parallel-fail", flow), rt, throw_on_error=False)

    assert log == [
        "do pre",
        "fail b",
        "finish a",
        "finish c",
        "undo None",
        "undo c",
        "undo a",
        "undo pre",
    ]
    assert result.status is RunStatus.FAILED
    assert [(e.step, e.message) for e in result.errors] == [("b", "b broke")]
    record = await rt.workflows.get_run(result.run_id)
    assert steps_of(record) == [
        ("pre", StepStatus.COMPENSATED),
        ("a", StepStatus.COMPENSATED),
        ("b", StepStatus.COMPENSATED),
        ("c", StepStatus.COMPENSATED),
    ]


async def test_a_compensation_is_retried(rt: Runtime) -> None:
    attempts: list[int] = []

    @create_step("book", max_retries=2, retry_interval=FAST)
    async def book(input: Any) -> str:
        return "booking-1"

    @book.compensate
    async def cancel_booking(value: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("booking API down")

    @create_step("fail")
    async def fail(input: Any) -> None:
        raise ValueError("later step failed")

    def flow(input: Any) -> None:
        book(input)
        fail(input)

    result = await run_inline(create_workflow("comp-retry", flow), rt, throw_on_error=False)

    assert attempts == [1, 2, 3]
    assert result.status is RunStatus.FAILED
    record = await rt.workflows.get_run(result.run_id)
    assert record.status is RunStatus.FAILED
    assert steps_of(record) == [("book", StepStatus.COMPENSATED), ("fail", StepStatus.FAILED)]


async def test_a_compensation_that_keeps_failing_ends_compensation_failed(rt: Runtime) -> None:
    attempts: list[int] = []

    @create_step("book", max_retries=1, retry_interval=FAST)
    async def book(input: Any) -> str:
        return "booking-1"

    @book.compensate
    async def cancel_booking(value: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise ConnectionError(f"still down ({ctx.attempt})")

    @create_step("fail")
    async def fail(input: Any) -> None:
        raise ValueError("later step failed")

    def flow(input: Any) -> None:
        book(input)
        fail(input)

    result = await run_inline(create_workflow("comp-fail", flow), rt, throw_on_error=False)

    assert attempts == [1, 2]
    assert result.status is RunStatus.COMPENSATION_FAILED
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("fail", "ValueError", "later step failed"),
        ("book", "ConnectionError", "still down (2)"),
    ]
    record = await rt.workflows.get_run(result.run_id)
    assert record.status is RunStatus.COMPENSATION_FAILED
    assert record.owner_id is None
    assert steps_of(record) == [
        ("book", StepStatus.COMPENSATION_FAILED),
        ("fail", StepStatus.FAILED),
    ]


async def test_every_failing_parallel_sibling_is_in_the_errors(rt: Runtime) -> None:
    undone: list[Any] = []

    async def undo(value: Any) -> None:
        undone.append(value)

    @create_step("left", compensate=undo)
    async def left(input: Any) -> None:
        raise ValueError("left broke")

    @create_step("right", compensate=undo)
    async def right(input: Any) -> None:
        raise KeyError("right broke")

    def flow(input: Any) -> None:
        parallelize(left(input), right(input))

    result = await run_inline(create_workflow("two-fail", flow), rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert undone == [None, None]  # both own compensations ran
    assert sorted((e.step, e.type) for e in result.errors) == [
        ("left", "ValueError"),
        ("right", "KeyError"),
    ]
    record = await rt.workflows.get_run(result.run_id)
    assert all(s.error is not None for s in record.steps)
