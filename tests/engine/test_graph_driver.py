"""Driving a composition workflow: parallel stages, transform and when at run time, code changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
    parallelize,
    transform,
    when,
)
from runtime.testing import ManualClock
from tests.helpers.definitions import run_inline
from tests.helpers.waiting import wait_status

pytestmark = pytest.mark.anyio


async def _instant(inp: Any) -> dict[str, int]:
    return {"x": 1}


async def _forever(inp: Any) -> None:
    await anyio.sleep_forever()


def interrupted_v1() -> Any:
    """``w`` v1: step ``reserve-v1`` completes, then ``wait`` blocks (so it can be cut off)."""
    first = create_step("reserve-v1", _instant)
    wait = create_step("wait", _forever)
    return create_workflow("w", lambda i: WorkflowResponse(wait(first(i))))


def v2() -> Any:
    """``w`` after the code change: step 1 is now ``reserve-v2``."""
    first = create_step("reserve-v2", _instant)
    wait = create_step("wait", _instant)
    return create_workflow("w", lambda i: WorkflowResponse(wait(first(i))))


def assert_nondeterminism(record: Any) -> None:
    assert record.status is RunStatus.FAILED
    assert record.error is not None
    assert record.error.type == "NonDeterminismError"
    assert "reserve-v1" in record.error.message
    assert "reserve-v2" in record.error.message


async def start_and_interrupt(db_url: str) -> str:
    """Run v1 inline until its second step, then cut the caller off (a redeploy)."""
    v1 = interrupted_v1()
    async with Runtime(db_url, workflows=[v1], background=False) as rt:
        with anyio.move_on_after(0.3):
            await v1(rt.container).run(input={}, transaction_id="tx")
        (run,) = (await rt.workflows.list_runs()).runs
        steps = (await rt.workflows.get_run(run.id)).steps
        assert [s.name for s in steps] == ["reserve-v1"]
        return run.id


async def test_renamed_step_fails_the_run_when_resumed_inline(db_url: str) -> None:
    """Bug: resuming a composition run whose step #1 changed name raised
    NonDeterminismError out of the engine and left the run ``running`` forever; now the
    run ends ``failed`` with that error, naming both step names."""
    run_id = await start_and_interrupt(db_url)
    wf = v2()
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        with anyio.fail_after(2):
            result = await wf(rt.container).run(input={}, transaction_id="tx", throw_on_error=False)
        assert result.run_id == run_id
        assert result.status is RunStatus.FAILED
        assert result.errors[0].type == "NonDeterminismError"
        assert_nondeterminism(await rt.workflows.get_run(run_id))


async def test_renamed_step_fails_the_run_in_the_worker(db_url: str) -> None:
    """Bug: the worker resuming a composition run whose step #1 changed name crashed on
    NonDeterminismError and left the run ``running`` (held) forever; now it ends ``failed``."""
    run_id = await start_and_interrupt(db_url)
    async with Runtime(db_url, workflows=[v2()], interval=0.1) as rt:
        record = await wait_status(rt, run_id, *[s for s in RunStatus if s.terminal], timeout=2.5)
        assert_nondeterminism(record)
        assert record.owner_id is None


async def test_renamed_step_fails_a_run_parked_on_a_retry(db_url: str) -> None:
    """Bug: a composition run parked on a retry of step ``reserve-v1``, resumed by new code
    whose step #1 is ``reserve-v2``, stayed ``running`` forever; now it ends ``failed``."""

    async def flaky(inp: Any) -> StepResponse:
        raise RuntimeError("flaky")

    # A retry interval this long parks the run (``sleeping``, released) instead of
    # waiting in memory.
    first = create_step("reserve-v1", flaky, max_retries=3, retry_interval=10)
    v1 = create_workflow("w", lambda i: WorkflowResponse(first(i)))
    async with Runtime(db_url, workflows=[v1], interval=0.1) as rt:
        handle = await rt.workflows.run("w", {})
        parked = await wait_status(rt, handle.run_id, RunStatus.SLEEPING, timeout=2.5)
        assert [s.name for s in parked.steps] == ["reserve-v1"]
    # The new code's worker, at a time when the retry is due.
    clock = ManualClock(parked.available_at + timedelta(seconds=1))
    async with Runtime(db_url, workflows=[v2()], interval=0.1, clock=clock) as rt:
        record = await wait_status(
            rt, handle.run_id, *[s for s in RunStatus if s.terminal], timeout=2.5
        )
        assert_nondeterminism(record)


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

    result = await run_inline(create_workflow("parallel-ok", flow), rt)

    assert (result.status, result.result) == (RunStatus.COMPLETED, "LEFTRIGHT")
    assert sorted(started) == ["left", "right"]


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

    result = await run_inline(create_workflow("bad-transform", flow), rt, throw_on_error=False)

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

    result = await run_inline(create_workflow("transformed", flow), rt, {"qty": 3, "coupon": None})

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

    vip = await run_inline(workflow, rt, {"name": "ada", "vip": True})
    plain = await run_inline(workflow, rt, {"name": "bob", "vip": False})

    assert calls == ["base ada", "gift ada", "base bob"]
    assert vip.result == {"name": "ada", "gift": "gift for ada"}
    assert plain.result == {"name": "bob", "gift": None}
    assert [s.name for s in (await rt.workflows.get_run(vip.run_id)).steps] == [
        "base",
        "vip-gift",
    ]
    assert [s.name for s in (await rt.workflows.get_run(plain.run_id)).steps] == ["base"]


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

    result = await run_inline(create_workflow("tail-fails", flow), rt, throw_on_error=False)
    assert result.status is RunStatus.FAILED
    assert undone == ["booking-1"]
