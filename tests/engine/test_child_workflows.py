"""Child workflows: ``run_as_step`` runs a workflow as one step of its parent, undone with it."""

from __future__ import annotations

from typing import Any

import anyio

from runtime import (
    RunStatus,
    Runtime,
    StepStatus,
    WorkflowDefinition,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from tests.helpers.definitions import run_inline, steps_of

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

    result = await run_inline(create_workflow("parent", flow), rt, {"x": 2})

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

    result = await run_inline(create_workflow("parent-fails", flow), rt, throw_on_error=False)

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

    result = await run_inline(create_workflow("parent-of-failing", flow), rt, throw_on_error=False)

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
    first = await run_inline(parent, rt, {"x": 1}, throw_on_error=False)
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
    first = await run_inline(parent, rt, {}, throw_on_error=False)
    assert first.status is RunStatus.FAILED
    broken[0] = False

    await rt.workflows.retry(first.run_id)
    with anyio.fail_after(5):
        record = await rt.workflows.wait(first.run_id)

    assert (record.status, record.output) == (RunStatus.COMPLETED, "inner ok")
    children = (await rt.workflows.list_runs(workflow="flaky-child")).runs
    assert sorted(c.status for c in children) == [RunStatus.COMPLETED, RunStatus.FAILED]
