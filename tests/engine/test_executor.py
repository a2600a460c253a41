"""The saga executor's semantics (DESIGN 2.1-2.3) through ``Runtime`` and ``wf(container).run``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from runtime import (
    Container,
    NotConfiguredError,
    RunStatus,
    Runtime,
    SerializationError,
    StepContext,
    StepError,
    StepFailed,
    StepResponse,
    StepStatus,
    StepTimeoutError,
    UnknownServiceError,
    WorkflowDefinition,
    WorkflowResponse,
    WorkflowResult,
    create_step,
    create_workflow,
    parallelize,
    transform,
    when,
)

FAST = 0.01  # retry_interval for tests: a few milliseconds of backoff


@pytest.fixture
async def rt(db_url: str) -> AsyncIterator[Runtime]:
    async with Runtime(database=db_url) as runtime:
        yield runtime


async def run(
    workflow: WorkflowDefinition, rt: Runtime, input: Any = None, **kwargs: Any
) -> WorkflowResult:
    with anyio.fail_after(5):
        return await workflow(rt.container).run(input=input, **kwargs)


def steps_of(record: Any) -> list[tuple[str, StepStatus]]:
    return [(s.name, s.status) for s in record.steps]


# -- checkpoints ------------------------------------------------------------------


async def test_every_step_is_checkpointed_before_the_next_starts(rt: Runtime) -> None:
    seen_by_second: list[Any] = []

    @create_step("first")
    async def first(input: dict[str, Any]) -> dict[str, Any]:
        return {"n": input["n"] + 1}

    @create_step("second")
    async def second(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        record = await ctx.container.resolve("workflows").get_run(ctx.run_id)
        seen_by_second.append((record.status, [(s.name, s.status, s.output) for s in record.steps]))
        return {"n": input["n"] * 10}

    @create_step("third")
    async def third(input: dict[str, Any]) -> int:
        return int(input["n"]) + 3

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse(third(second(first(input))))

    result = await run(create_workflow("checkpointed", flow), rt, {"n": 1})

    assert (result.status, result.result, result.errors) == (RunStatus.COMPLETED, 23, [])
    assert seen_by_second == [(RunStatus.RUNNING, [("first", StepStatus.COMPLETED, {"n": 2})])]
    record = await rt.workflows.get_run(result.run_id)
    assert record.status is RunStatus.COMPLETED
    assert record.output == 23
    assert record.input == {"n": 1}
    assert record.owner_id is None  # released
    assert record.ended_at is not None
    assert [
        (s.seq, s.name, s.status, s.output, s.attempts, s.completed_order) for s in record.steps
    ] == [
        (1, "first", StepStatus.COMPLETED, {"n": 2}, 1, 1),
        (2, "second", StepStatus.COMPLETED, {"n": 20}, 1, 2),
        (3, "third", StepStatus.COMPLETED, 23, 1, 3),
    ]
    assert all(s.started_at is not None and s.ended_at is not None for s in record.steps)
    assert all(s.started_at <= s.ended_at for s in record.steps)  # type: ignore[operator]


async def test_references_nested_in_inputs_and_the_response_resolve(rt: Runtime) -> None:
    @create_step("load")
    async def load(input: dict[str, Any]) -> dict[str, Any]:
        return {"id": input["order_id"], "lines": [{"sku": "a"}, {"sku": "b"}]}

    @create_step("label")
    async def label(input: dict[str, Any]) -> str:
        return f"{input['order']['id']}:{len(input['skus'])}"

    def flow(input: Any) -> WorkflowResponse:
        order = load(input)
        text = label({"order": order, "skus": [order["lines"][0].sku, order.lines[1]["sku"]]})
        return WorkflowResponse({"label": text, "first": [order["lines"][0]], "n": 7})

    result = await run(create_workflow("nested-refs", flow), rt, {"order_id": "o9"})

    assert result.result == {"label": "o9:2", "first": [{"sku": "a"}], "n": 7}


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

    result = await run(create_workflow("retried", lambda input: flaky(input)), rt)

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

    result = await run(
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

    result = await run(
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

    result = await run(create_workflow("timeout-retry", lambda i: slow_then_fast(i)), rt)

    assert (result.status, result.result) == (RunStatus.COMPLETED, "fast")
    assert attempts == [1, 2]
    assert cancelled == [1]
    record = await rt.workflows.get_run(result.run_id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.COMPLETED, 2)]


async def test_a_step_past_its_timeout_fails_with_a_step_timeout_error(rt: Runtime) -> None:
    @create_step("hangs", timeout=0.05)
    async def hangs(input: Any) -> None:
        await anyio.Event().wait()

    result = await run(
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
        await run(create_workflow("timeout-raise", lambda i: hangs(i)), rt)

    assert caught.value.step == "hangs"
    assert isinstance(caught.value, TimeoutError)


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

    result = await run(create_workflow("permanent", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("own-comp", lambda i: charge(i)), rt, throw_on_error=False)

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

    result = await run(create_workflow("skipped", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("skip-ok", flow), rt)

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

    result = await run(create_workflow("skip-policy", flow), rt)

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

    result = await run(create_workflow("continue-policy", flow), rt)

    assert calls == ["notify", "finish"]
    assert (result.status, result.result) == (RunStatus.COMPLETED, "finished")
    assert [(e.step, e.type) for e in result.errors] == [("notify", "ConnectionError")]
    record = await rt.workflows.get_run(result.run_id)
    assert record.status is RunStatus.COMPLETED
    assert steps_of(record) == [("notify", StepStatus.FAILED), ("finish", StepStatus.COMPLETED)]


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

    result = await run(create_workflow("reverse", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("partial-comp", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("comp-input", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("parallel-fail", flow), rt, throw_on_error=False)

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


async def test_parallel_steps_run_concurrently_and_feed_later_steps(rt: Runtime) -> None:
    both_started = anyio.Event()
    started: list[str] = []

    async def meet(name: str) -> str:
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await both_started.wait()  # only returns if the sibling runs at the same time
        return name.upper()

    @create_step("left")
    async def left(input: Any) -> str:
        return await meet("left")

    @create_step("right")
    async def right(input: Any) -> str:
        return await meet("right")

    def flow(input: Any) -> WorkflowResponse:
        l_out, r_out = parallelize(left(input), right(input))
        return WorkflowResponse(transform({"l": l_out, "r": r_out}, lambda v: v["l"] + v["r"]))

    result = await run(create_workflow("parallel-ok", flow), rt)

    assert (result.status, result.result) == (RunStatus.COMPLETED, "LEFTRIGHT")
    assert sorted(started) == ["left", "right"]


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

    result = await run(create_workflow("comp-retry", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("comp-fail", flow), rt, throw_on_error=False)

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

    result = await run(create_workflow("two-fail", flow), rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert undone == [None, None]  # both own compensations ran
    assert sorted((e.step, e.type) for e in result.errors) == [
        ("left", "ValueError"),
        ("right", "KeyError"),
    ]
    record = await rt.workflows.get_run(result.run_id)
    assert all(s.error is not None for s in record.steps)


# -- transaction ids ---------------------------------------------------------------------


async def test_a_second_run_with_the_same_transaction_id_returns_the_finished_run(
    rt: Runtime,
) -> None:
    calls: list[Any] = []

    @create_step("charge")
    async def charge(input: Any) -> dict[str, Any]:
        calls.append(input)
        return {"charged": input["amount"]}

    workflow = create_workflow("charge-once", lambda i: WorkflowResponse(charge(i)))

    first = await run(workflow, rt, {"amount": 5}, transaction_id="tx-1")
    second = await run(workflow, rt, {"amount": 99}, transaction_id="tx-1")
    third = await run(workflow, rt, {"amount": 7}, transaction_id="tx-2")

    assert calls == [{"amount": 5}, {"amount": 7}]
    assert second.run_id == first.run_id
    assert (second.status, second.result) == (RunStatus.COMPLETED, {"charged": 5})
    assert third.run_id != first.run_id
    page = await rt.workflows.list_runs(workflow="charge-once")
    assert sorted(r.idempotency_key or "" for r in page.runs) == ["tx-1", "tx-2"]


async def test_a_second_run_of_a_failed_transaction_returns_its_errors(rt: Runtime) -> None:
    calls: list[int] = []

    @create_step("fails")
    async def fails(input: Any) -> None:
        calls.append(1)
        raise ValueError("bad")

    workflow = create_workflow("fail-once", lambda i: fails(i))

    first = await run(workflow, rt, transaction_id="tx", throw_on_error=False)
    second = await run(workflow, rt, transaction_id="tx", throw_on_error=False)

    assert calls == [1]
    assert (second.run_id, second.status) == (first.run_id, RunStatus.FAILED)
    assert [(e.step, e.message) for e in second.errors] == [("fails", "bad")]
    with pytest.raises(StepFailed, match="bad"):
        await run(workflow, rt, transaction_id="tx")
    assert calls == [1]


async def test_the_same_transaction_id_in_another_workflow_is_another_run(rt: Runtime) -> None:
    calls: list[str] = []

    @create_step("work")
    async def work(input: Any) -> str:
        calls.append(input)
        return input

    one = create_workflow("one", lambda i: WorkflowResponse(work(i)))
    two = create_workflow("two", lambda i: WorkflowResponse(work(i)))

    first = await run(one, rt, "in one", transaction_id="shared")
    second = await run(two, rt, "in two", transaction_id="shared")

    assert calls == ["in one", "in two"]
    assert first.run_id != second.run_id
    assert (first.result, second.result) == ("in one", "in two")


async def test_an_interrupted_run_resumes_without_repeating_finished_steps(rt: Runtime) -> None:
    calls: list[str] = []
    keys: dict[str, list[str]] = {"first": [], "second": []}
    interrupt: list[anyio.CancelScope] = []

    @create_step("first")
    async def first(input: Any, ctx: StepContext) -> str:
        calls.append("first")
        keys["first"].append(ctx.idempotency_key)
        return "one"

    @create_step("second")
    async def second(input: Any, ctx: StepContext) -> str:
        calls.append("second")
        keys["second"].append(ctx.idempotency_key)
        if interrupt:
            interrupt.pop().cancel()  # the process "dies" while this step runs
            await anyio.Event().wait()
        return f"two after {input}"

    workflow = create_workflow("resumable", lambda i: WorkflowResponse(second(first(i))))

    with anyio.fail_after(5), anyio.CancelScope() as scope:
        interrupt.append(scope)
        await workflow(rt.container).run(input=None, transaction_id="tx-resume")
    assert scope.cancelled_caught
    page = await rt.workflows.list_runs(workflow="resumable")
    (interrupted,) = page.runs
    # Cut off, the run was handed back (not left held by this live worker); the worker
    # may already have taken it up again.
    assert interrupted.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED)
    assert interrupted.owner_id in (None, rt.identity.id)
    assert steps_of(await rt.workflows.get_run(interrupted.id))[0] == (
        "first",
        StepStatus.COMPLETED,
    )

    result = await run(workflow, rt, transaction_id="tx-resume")

    assert (result.run_id, result.status, result.result) == (
        interrupted.id,
        RunStatus.COMPLETED,
        "two after one",
    )
    assert calls == ["first", "second", "second"]
    assert keys["second"][0] == keys["second"][1]
    assert keys["first"][0] != keys["second"][0]


async def test_a_concurrent_run_with_the_same_transaction_id_waits_for_the_first(
    rt: Runtime,
) -> None:
    calls: list[str] = []
    started = anyio.Event()
    release = anyio.Event()
    results: dict[str, WorkflowResult] = {}

    @create_step("slow")
    async def slow(input: Any) -> str:
        calls.append(input)
        started.set()
        await release.wait()
        return f"done {input}"

    workflow = create_workflow("joined", lambda i: WorkflowResponse(slow(i)))

    async def start(label: str) -> None:
        results[label] = await workflow(rt.container).run(input=label, transaction_id="tx")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(start, "first")
            await started.wait()
            tg.start_soon(start, "second")
            await anyio.wait_all_tasks_blocked()
            assert "second" not in results  # it waits for the run to end
            release.set()

    assert calls == ["first"]
    assert results["first"].run_id == results["second"].run_id
    assert results["second"].status is RunStatus.COMPLETED
    assert results["first"].result == results["second"].result == "done first"


async def test_a_failed_attempt_before_an_interruption_still_counts(rt: Runtime) -> None:
    attempts: list[tuple[int, str]] = []
    interrupt: list[anyio.CancelScope] = []

    @create_step("flaky", max_retries=1, retry_interval=FAST)
    async def flaky(input: Any, ctx: StepContext) -> str:
        attempts.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt == 1:
            interrupt.pop().cancel()  # the process "dies" during the retry wait
            raise ConnectionError("first attempt failed")
        return "second attempt ok"

    workflow = create_workflow("interrupted-retry", lambda i: WorkflowResponse(flaky(i)))

    with anyio.fail_after(5), anyio.CancelScope() as scope:
        interrupt.append(scope)
        await workflow(rt.container).run(transaction_id="tx-retry")
    (interrupted,) = (await rt.workflows.list_runs(workflow="interrupted-retry")).runs
    record = await rt.workflows.get_run(interrupted.id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.RUNNING, 1)]

    result = await run(workflow, rt, transaction_id="tx-retry")

    assert (result.status, result.result) == (RunStatus.COMPLETED, "second attempt ok")
    assert [number for number, _ in attempts] == [1, 2]
    assert attempts[0][1] == attempts[1][1]
    record = await rt.workflows.get_run(interrupted.id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.COMPLETED, 2)]


# -- serialization -------------------------------------------------------------------------


async def test_a_value_that_is_not_json_fails_the_step_and_not_the_engine(rt: Runtime) -> None:
    log: list[str] = []

    @create_step("good")
    async def good(input: Any) -> str:
        log.append("good")
        return "fine"

    @good.compensate
    async def undo_good(value: Any) -> None:
        log.append(f"undo {value}")

    @create_step("bad", max_retries=2, retry_interval=FAST)
    async def bad(input: Any) -> dict[str, Any]:
        log.append("bad")
        return {"handle": object()}

    def flow(input: Any) -> None:
        good(input)
        bad(input)

    result = await run(create_workflow("not-json", flow), rt, throw_on_error=False)

    assert log == ["good", "bad", "undo fine"]  # not retried: it would fail the same way
    assert result.status is RunStatus.FAILED
    assert [(e.step, e.type) for e in result.errors] == [("bad", "SerializationError")]
    assert "object" in result.errors[0].message
    record = await rt.workflows.get_run(result.run_id)
    assert steps_of(record) == [("good", StepStatus.COMPENSATED), ("bad", StepStatus.FAILED)]

    # The engine carries on with the next run.
    @create_step("after")
    async def after(input: Any) -> str:
        return "still works"

    again = await run(create_workflow("after-not-json", lambda i: WorkflowResponse(after(i))), rt)
    assert (again.status, again.result) == (RunStatus.COMPLETED, "still works")


async def test_a_workflow_input_that_is_not_json_is_refused_before_a_run_starts(
    rt: Runtime,
) -> None:
    @create_step("noop")
    async def noop(input: Any) -> None:
        return None

    with pytest.raises(SerializationError):
        await run(create_workflow("bad-input", lambda i: noop(i)), rt, {"x": object()})

    assert (await rt.workflows.list_runs(workflow="bad-input")).runs == []


class Order(BaseModel):
    id: str
    total: int
    tags: list[str] = []


async def test_pydantic_model_outputs_round_trip_as_dicts(rt: Runtime) -> None:
    seen: list[Any] = []

    @create_step("make")
    async def make(input: Any) -> Order:
        return Order(id=input["id"], total=3, tags=["x"])

    @create_step("make-response")
    async def make_response(input: Any) -> StepResponse:
        return StepResponse(Order(id="o2", total=4))

    @create_step("use")
    async def use(input: Any) -> int:
        seen.append(input)
        return int(input["first"]["total"]) + int(input["second"]["total"])

    def flow(input: Any) -> WorkflowResponse:
        first, second = make(input), make_response(input)
        return WorkflowResponse({"sum": use({"first": first, "second": second}), "order": first})

    result = await run(create_workflow("pydantic-out", flow), rt, {"id": "o1"})

    assert seen == [
        {
            "first": {"id": "o1", "total": 3, "tags": ["x"]},
            "second": {"id": "o2", "total": 4, "tags": []},
        },
    ]
    assert type(seen[0]["first"]) is dict
    assert result.result == {"sum": 7, "order": {"id": "o1", "total": 3, "tags": ["x"]}}
    record = await rt.workflows.get_run(result.run_id)
    assert record.steps[0].output == {"id": "o1", "total": 3, "tags": ["x"]}
    assert record.output == result.result


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

    result = await run(create_workflow("keys", flow), rt)
    other = await run(create_workflow("keys-other", flow), rt)

    key = seen[0][1]
    assert seen[:3] == [(n, key, "pay", "keys") for n in (1, 2, 3)]
    assert result.result == {"pay": key, "ship": result.result["ship"]}
    assert result.result["ship"] != key  # each step has its own key
    assert result.run_id in key
    assert other.result["pay"] != key  # and each run


async def test_throw_on_error_raises_step_failed(rt: Runtime) -> None:
    @create_step("explode")
    async def explode(input: Any) -> None:
        raise KeyError("missing sku")

    with pytest.raises(StepFailed) as caught:
        await run(create_workflow("throws", lambda i: explode(i)), rt)

    assert (caught.value.step, caught.value.error_type) == ("explode", "KeyError")
    assert "missing sku" in caught.value.message
    page = await rt.workflows.list_runs(workflow="throws")
    assert [r.status for r in page.runs] == [RunStatus.FAILED]


async def test_throw_on_error_false_returns_the_errors(rt: Runtime) -> None:
    @create_step("explode")
    async def explode(input: Any) -> None:
        raise ValueError("boom")

    result = await run(create_workflow("returns", lambda i: explode(i)), rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert result.result is None
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("explode", "ValueError", "boom")
    ]
    assert "Traceback" in (result.errors[0].traceback or "")


async def test_a_timeout_error_raised_by_the_step_itself_keeps_its_message(
    rt: Runtime,
) -> None:
    @create_step("upstream")
    async def upstream(input: Any) -> None:
        raise TimeoutError("upstream API timed out")

    result = await run(
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

    result = await run(create_workflow("signatures", flow), rt, 21)

    assert result.result == [{"doubled": 42}, "constant", "with-ctx:42"]


async def test_a_failing_transform_fails_the_run_and_rolls_back(rt: Runtime) -> None:
    log: list[str] = []

    @create_step("before")
    async def before(input: Any) -> int:
        return 0

    @before.compensate
    async def undo_before(value: Any) -> None:
        log.append(f"undo before {value}")

    def flow(input: Any) -> WorkflowResponse:
        out = before(input)
        return WorkflowResponse(transform({"n": out}, lambda v: 10 // v["n"]))

    result = await run(create_workflow("bad-transform", flow), rt, throw_on_error=False)

    assert log == ["undo before 0"]
    assert result.status is RunStatus.FAILED
    assert [e.type for e in result.errors] == ["ZeroDivisionError"]


# -- transform and when at run time ---------------------------------------------------------


async def test_transform_computes_at_run_time(rt: Runtime) -> None:
    seen: list[Any] = []

    @create_step("price")
    async def price(input: Any) -> dict[str, Any]:
        return {"unit": 4, "qty": input["qty"]}

    @create_step("charge")
    async def charge(input: Any) -> str:
        seen.append(input)
        return "charged"

    def flow(input: Any) -> WorkflowResponse:
        p = price(input)
        total = transform(
            {"p": p, "coupon": input["coupon"]},
            lambda v: v["p"]["unit"] * v["p"]["qty"],
            lambda t: {"total": t},
        )
        charge(total)
        return WorkflowResponse({"total": total["total"], "status": "ok"})

    result = await run(create_workflow("transformed", flow), rt, {"qty": 3, "coupon": None})

    assert seen == [{"total": 12}]
    assert result.result == {"total": 12, "status": "ok"}


async def test_when_then_runs_its_steps_only_when_the_condition_holds(rt: Runtime) -> None:
    calls: list[str] = []

    @create_step("base")
    async def base(input: Any) -> str:
        calls.append(f"base {input['name']}")
        return input["name"]

    @create_step("vip-gift")
    async def vip_gift(input: Any) -> str:
        calls.append(f"gift {input}")
        return f"gift for {input}"

    def flow(input: Any) -> WorkflowResponse:
        name = base(input)
        gift = when({"vip": input["vip"]}, lambda v: v["vip"]).then(lambda: vip_gift(name))
        return WorkflowResponse({"name": name, "gift": gift})

    workflow = create_workflow("branching", flow)

    vip = await run(workflow, rt, {"name": "ada", "vip": True})
    plain = await run(workflow, rt, {"name": "bob", "vip": False})

    assert calls == ["base ada", "gift ada", "base bob"]
    assert vip.result == {"name": "ada", "gift": "gift for ada"}
    assert plain.result == {"name": "bob", "gift": None}
    assert [s.name for s in (await rt.workflows.get_run(vip.run_id)).steps] == [
        "base",
        "vip-gift",
    ]
    assert [s.name for s in (await rt.workflows.get_run(plain.run_id)).steps] == ["base"]


# -- child workflows ---------------------------------------------------------------------------


def _child_workflow(log: list[str]) -> WorkflowDefinition:
    @create_step("c1")
    async def c1(input: Any) -> str:
        log.append(f"c1 {input['x']}")
        return "c1-out"

    @c1.compensate
    async def undo_c1(value: Any) -> None:
        log.append(f"undo c1 {value}")

    @create_step("c2")
    async def c2(input: Any) -> str:
        log.append("c2")
        return "c2-out"

    @c2.compensate
    async def undo_c2(value: Any) -> None:
        log.append(f"undo c2 {value}")

    def flow(input: Any) -> WorkflowResponse:
        first = c1(input)
        return WorkflowResponse({"child": [first, c2(input)]})

    return create_workflow("child", flow)


async def test_run_as_step_runs_a_child_workflow_as_one_step(rt: Runtime) -> None:
    log: list[str] = []
    child = _child_workflow(log)

    @create_step("p1")
    async def p1(input: Any) -> dict[str, Any]:
        log.append("p1")
        return {"x": input["x"] * 2}

    @create_step("p3")
    async def p3(input: Any) -> str:
        log.append(f"p3 {input}")
        return "parent done"

    def flow(input: Any) -> WorkflowResponse:
        out = p1(input)
        child_out = child.run_as_step(input=out)
        return WorkflowResponse(p3(child_out["child"]))

    result = await run(create_workflow("parent", flow), rt, {"x": 2})

    assert log == ["p1", "c1 4", "c2", "p3 ['c1-out', 'c2-out']"]
    assert (result.status, result.result) == (RunStatus.COMPLETED, "parent done")
    parent = await rt.workflows.get_run(result.run_id)
    assert steps_of(parent) == [
        ("p1", StepStatus.COMPLETED),
        ("child", StepStatus.COMPLETED),
        ("p3", StepStatus.COMPLETED),
    ]
    (child_run,) = (await rt.workflows.list_runs(workflow="child")).runs
    assert child_run.parent_run_id == result.run_id
    assert child_run.status is RunStatus.COMPLETED
    assert child_run.output == {"child": ["c1-out", "c2-out"]}


async def test_a_failing_parent_compensates_its_childs_completed_steps(rt: Runtime) -> None:
    log: list[str] = []
    child = _child_workflow(log)

    @create_step("p1")
    async def p1(input: Any) -> dict[str, Any]:
        log.append("p1")
        return {"x": 1}

    @p1.compensate
    async def undo_p1(value: Any) -> None:
        log.append("undo p1")

    @create_step("p3")
    async def p3(input: Any) -> None:
        log.append("p3")
        raise ValueError("parent fails after the child")

    def flow(input: Any) -> None:
        child.run_as_step(input=p1(input))
        p3(input)

    result = await run(create_workflow("parent-fails", flow), rt, throw_on_error=False)

    assert log == [
        "p1",
        "c1 1",
        "c2",
        "p3",
        "undo c2 c2-out",
        "undo c1 c1-out",
        "undo p1",
    ]
    assert result.status is RunStatus.FAILED
    (child_run,) = (await rt.workflows.list_runs(workflow="child")).runs
    child_record = await rt.workflows.get_run(child_run.id)
    assert steps_of(child_record) == [
        ("c1", StepStatus.COMPENSATED),
        ("c2", StepStatus.COMPENSATED),
    ]
    assert child_record.status is RunStatus.CANCELED  # docs/semantics.md: the child is canceled


async def test_a_failing_child_fails_its_parent_step(rt: Runtime) -> None:
    log: list[str] = []

    @create_step("inner")
    async def inner(input: Any) -> None:
        log.append("inner")
        raise ValueError("inner broke")

    child = create_workflow("failing-child", lambda i: inner(i))

    @create_step("before")
    async def before(input: Any) -> str:
        return "b"

    @before.compensate
    async def undo_before(value: Any) -> None:
        log.append("undo before")

    def flow(input: Any) -> None:
        before(input)
        child.run_as_step(input=input)

    result = await run(create_workflow("parent-of-failing", flow), rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert log == ["inner", "undo before"]
    assert result.errors[0].step in ("inner", "failing-child")
    assert "inner broke" in result.errors[0].message
    (child_run,) = (await rt.workflows.list_runs(workflow="failing-child")).runs
    assert child_run.status is RunStatus.FAILED


async def test_retrying_a_parent_runs_its_compensated_child_again(rt: Runtime) -> None:
    """Bug: a parent that used ``run_as_step`` and then failed compensated its child (the
    child ended ``canceled``); retrying the parent found that same child run by its
    transaction id and failed again with "child run ... ended canceled". Now the child
    step, running again, starts a new child run (the old one stays, canceled)."""
    log: list[str] = []
    child = _child_workflow(log)
    broken = [True]

    @create_step("after")
    async def after(input: Any) -> str:
        log.append("after")
        if broken[0]:
            raise ValueError("not yet")
        return "fixed"

    def flow(input: Any) -> WorkflowResponse:
        out = child.run_as_step(input=input)
        return WorkflowResponse({"child": out, "after": after(input)})

    parent = create_workflow("parent-retried", flow)
    first = await run(parent, rt, {"x": 1}, throw_on_error=False)
    assert first.status is RunStatus.FAILED
    broken[0] = False
    log.clear()

    await rt.workflows.retry(first.run_id)
    with anyio.fail_after(5):
        record = await rt.workflows.wait(first.run_id)

    assert record.status is RunStatus.COMPLETED, record.error
    assert record.output == {"child": {"child": ["c1-out", "c2-out"]}, "after": "fixed"}
    assert log == ["c1 1", "c2", "after"]
    children = (await rt.workflows.list_runs(workflow="child")).runs
    assert sorted((c.status, c.parent_run_id) for c in children) == [
        (RunStatus.CANCELED, first.run_id),
        (RunStatus.COMPLETED, first.run_id),
    ]


async def test_retrying_a_parent_whose_child_failed_runs_a_new_child(rt: Runtime) -> None:
    """Same bug when the child itself failed (and so failed the parent's step): the retry
    found the failed child again; now it starts a new one."""
    broken = [True]

    @create_step("inner")
    async def inner(input: Any) -> str:
        if broken[0]:
            raise ValueError("inner broke")
        return "inner ok"

    child = create_workflow("flaky-child", lambda i: WorkflowResponse(inner(i)))
    parent = create_workflow(
        "parent-of-flaky", lambda i: WorkflowResponse(child.run_as_step(input=i))
    )
    first = await run(parent, rt, {}, throw_on_error=False)
    assert first.status is RunStatus.FAILED
    broken[0] = False

    await rt.workflows.retry(first.run_id)
    with anyio.fail_after(5):
        record = await rt.workflows.wait(first.run_id)

    assert (record.status, record.output) == (RunStatus.COMPLETED, "inner ok")
    children = (await rt.workflows.list_runs(workflow="flaky-child")).runs
    assert sorted(c.status for c in children) == [RunStatus.COMPLETED, RunStatus.FAILED]


# -- the container ------------------------------------------------------------------------------


async def test_running_through_a_bare_container_raises_not_configured() -> None:
    @create_step("noop")
    async def noop(input: Any) -> None:
        return None

    workflow = create_workflow("no-runtime", lambda i: noop(i))

    with pytest.raises(NotConfiguredError, match="Runtime"):
        await workflow(Container()).run(input={})


def test_resolve_of_an_unknown_name_lists_the_registered_names() -> None:
    container = Container()
    container.register("inventory", object())
    container.register_factory("carts", lambda: {"c1": []})

    with pytest.raises(UnknownServiceError) as caught:
        container.resolve("orders")

    assert isinstance(caught.value, LookupError)
    assert caught.value.name == "orders"
    assert sorted(caught.value.known) == ["carts", "inventory"]
    assert "'orders'" in str(caught.value)
    assert "carts, inventory" in str(caught.value)


def test_an_empty_container_says_nothing_is_registered() -> None:
    with pytest.raises(UnknownServiceError, match="nothing registered"):
        Container().resolve("anything")


async def test_a_step_resolving_an_unknown_service_fails_with_the_names(rt: Runtime) -> None:
    rt.container.register("inventory", {"sku": 3})

    @create_step("lookup")
    async def lookup(input: Any, ctx: StepContext) -> Any:
        return ctx.container.resolve("inventroy")

    result = await run(create_workflow("typo", lambda i: lookup(i)), rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    (error,) = result.errors
    assert error.type == "UnknownServiceError"
    assert "inventory" in error.message
    assert "workflows" in error.message  # the runtime's own services are listed too


async def test_steps_resolve_services_from_the_runtime_container(rt: Runtime) -> None:
    calls = 0

    def make_inventory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"sku-1": 5}

    rt.container.register_factory("inventory", make_inventory)

    @create_step("stock")
    async def stock(input: Any, ctx: StepContext) -> int:
        return int(ctx.container.resolve("inventory")[input])

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse([stock(input), stock.with_options(name="stock-again")(input)])

    result = await run(create_workflow("stocked", flow), rt, "sku-1")

    assert result.result == [5, 5]
    assert calls == 1  # the factory ran once


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

    result = await run(workflow, rt, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert calls == [("invoke", "needs-ctx"), ("undo", "made", "needs-ctx")]


async def test_the_last_steps_checkpoint_also_completes_the_run(db_url: str) -> None:
    """Two commits for a one-step run: its insert, then its step with its completion."""

    @create_step("only")
    async def only(input: Any) -> int:
        return int(input) + 1

    workflow = create_workflow("folded", lambda i: transform({"n": only(i)}, lambda d: d["n"] * 10))
    async with Runtime(database=db_url, background=False) as rt:
        store: Any = rt.store
        before = store.commits
        result = await workflow(rt.container).run(input=1)
        commits = store.commits - before
        record = await rt.workflows.get_run(result.run_id)
    assert (result.status, result.result) == (RunStatus.COMPLETED, 20)
    assert commits == 2
    assert (record.status, record.output, record.owner_id) == (RunStatus.COMPLETED, 20, None)
    assert record.ended_at is not None


async def test_a_failing_transform_after_the_last_step_still_rolls_back(rt: Runtime) -> None:
    undone: list[Any] = []

    @create_step("book")
    async def book() -> str:
        return "booking-1"

    @book.compensate
    async def unbook(booking: str) -> None:
        undone.append(booking)

    def flow() -> Any:
        return transform({"b": book()}, lambda d: d["b"]["missing"])  # a str has no key

    result = await run(create_workflow("tail-fails", flow), rt, throw_on_error=False)
    assert result.status is RunStatus.FAILED
    assert undone == ["booking-1"]
