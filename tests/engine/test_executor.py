"""Starting, resuming and ending a run: checkpoints, transaction ids, what ``run`` returns."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepContext,
    StepFailed,
    StepResponse,
    StepStatus,
    WorkflowResponse,
    WorkflowResult,
    create_step,
    create_workflow,
    transform,
)
from tests.helpers.backends import sqlite_only
from tests.helpers.definitions import FAST, run_inline, steps_of
from tests.helpers.waiting import wait_status

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

    result = await run_inline(create_workflow("checkpointed", flow), rt, {"n": 1})

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

    result = await run_inline(create_workflow("nested-refs", flow), rt, {"order_id": "o9"})

    assert result.result == {"label": "o9:2", "first": [{"sku": "a"}], "n": 7}


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

    first = await run_inline(workflow, rt, {"amount": 5}, transaction_id="tx-1")
    second = await run_inline(workflow, rt, {"amount": 99}, transaction_id="tx-1")
    third = await run_inline(workflow, rt, {"amount": 7}, transaction_id="tx-2")

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

    first = await run_inline(workflow, rt, transaction_id="tx", throw_on_error=False)
    second = await run_inline(workflow, rt, transaction_id="tx", throw_on_error=False)

    assert calls == [1]
    assert (second.run_id, second.status) == (first.run_id, RunStatus.FAILED)
    assert [(e.step, e.message) for e in second.errors] == [("fails", "bad")]
    with pytest.raises(StepFailed, match="bad"):
        await run_inline(workflow, rt, transaction_id="tx")
    assert calls == [1]


async def test_the_same_transaction_id_in_another_workflow_is_another_run(rt: Runtime) -> None:
    calls: list[str] = []

    @create_step("work")
    async def work(input: Any) -> str:
        calls.append(input)
        return input

    one = create_workflow("one", lambda i: WorkflowResponse(work(i)))
    two = create_workflow("two", lambda i: WorkflowResponse(work(i)))

    first = await run_inline(one, rt, "in one", transaction_id="shared")
    second = await run_inline(two, rt, "in two", transaction_id="shared")

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

    result = await run_inline(workflow, rt, transaction_id="tx-resume")

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

    result = await run_inline(workflow, rt, transaction_id="tx-retry")

    assert (result.status, result.result) == (RunStatus.COMPLETED, "second attempt ok")
    assert [number for number, _ in attempts] == [1, 2]
    assert attempts[0][1] == attempts[1][1]
    record = await rt.workflows.get_run(interrupted.id)
    assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.COMPLETED, 2)]


async def test_throw_on_error_raises_step_failed(rt: Runtime) -> None:
    @create_step("explode")
    async def explode(input: Any) -> None:
        raise KeyError("missing sku")

    with pytest.raises(StepFailed) as caught:
        await run_inline(create_workflow("throws", lambda i: explode(i)), rt)

    assert (caught.value.step, caught.value.error_type) == ("explode", "KeyError")
    assert "missing sku" in caught.value.message
    page = await rt.workflows.list_runs(workflow="throws")
    assert [r.status for r in page.runs] == [RunStatus.FAILED]


async def test_throw_on_error_false_returns_the_errors(rt: Runtime) -> None:
    @create_step("explode")
    async def explode(input: Any) -> None:
        raise ValueError("boom")

    result = await run_inline(
        create_workflow("returns", lambda i: explode(i)), rt, throw_on_error=False
    )

    assert result.status is RunStatus.FAILED
    assert result.result is None
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("explode", "ValueError", "boom")
    ]
    assert "Traceback" in (result.errors[0].traceback or "")


@sqlite_only  # counts the SQLite store's commits
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


pytestmark = pytest.mark.anyio


def slow_workflow(calls: list[int], seconds: float) -> Any:
    @create_step("slow")
    async def slow(inp: Any, ctx: Any) -> StepResponse:
        calls.append(ctx.attempt)
        await anyio.sleep(seconds)
        return StepResponse({"ok": True})

    return create_workflow("stuck-wf", lambda i: WorkflowResponse(slow(i)))


async def test_cut_off_inline_run_is_released_pending_and_unowned(db_url: str) -> None:
    """Bug: a cancelled ``wf(container).run(...)`` left its run ``running``, owned by the
    live worker, so no one would ever resume it; now it is handed back ``pending``."""
    calls: list[int] = []
    wf = slow_workflow(calls, 1.0)
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        with anyio.move_on_after(0.2) as scope:
            await wf(rt.container).run(input={}, transaction_id="t1")
        assert scope.cancelled_caught
        (run,) = (await rt.workflows.list_runs()).runs
        assert run.status is RunStatus.PENDING
        assert run.owner_id is None
        assert calls == [1]


async def test_cut_off_inline_run_completes_on_its_own(db_url: str) -> None:
    """Bug: a run whose caller was cancelled mid-step stayed ``running`` forever; now the
    worker takes it up again and it completes, the step running at most twice."""
    calls: list[int] = []
    wf = slow_workflow(calls, 1.0)
    async with Runtime(db_url, workflows=[wf], interval=0.1) as rt:
        with anyio.move_on_after(0.2) as scope:
            await wf(rt.container).run(input={}, transaction_id="t1")
        assert scope.cancelled_caught
        (run,) = (await rt.workflows.list_runs()).runs
        # Handed back: unowned, or already being driven again by this runtime's worker.
        assert run.owner_id is None or run.id in rt.worker.engine.active_runs
        done = await wait_status(rt, run.id, *[s for s in RunStatus if s.terminal], timeout=2.5)
        assert done.status is RunStatus.COMPLETED
        assert done.output == {"ok": True}
        assert done.owner_id is None
        assert 1 <= len(calls) <= 2
