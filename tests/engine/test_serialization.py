"""What crosses the store is JSON: values that are not fail the step, models round-trip."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from runtime import (
    RunStatus,
    Runtime,
    SerializationError,
    StepResponse,
    StepStatus,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from tests.helpers.definitions import FAST, run_inline, steps_of

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

    result = await run_inline(create_workflow("not-json", flow), rt, throw_on_error=False)

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

    again = await run_inline(
        create_workflow("after-not-json", lambda i: WorkflowResponse(after(i))), rt
    )
    assert (again.status, again.result) == (RunStatus.COMPLETED, "still works")


async def test_a_workflow_input_that_is_not_json_is_refused_before_a_run_starts(
    rt: Runtime,
) -> None:
    @create_step("noop")
    async def noop(input: Any) -> None:
        return None

    with pytest.raises(SerializationError):
        await run_inline(create_workflow("bad-input", lambda i: noop(i)), rt, {"x": object()})

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

    result = await run_inline(create_workflow("pydantic-out", flow), rt, {"id": "o1"})

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


async def test_an_error_message_json_cannot_carry_is_stored_escaped(rt: Runtime) -> None:
    """Bug: a step failing with a lone surrogate in its message (bytes decoded with
    ``surrogateescape``) made the failure's own checkpoint raise, and the run was handed
    back and retried for ever. Its error is stored with the character escaped."""
    bad_text = b"caf\xe9".decode("utf-8", "surrogateescape")

    @create_step("decode")
    async def decode(input: Any) -> None:
        raise ValueError(f"cannot read {bad_text}")

    wf = create_workflow("surrogate", lambda input: WorkflowResponse(decode(input)))
    result = await wf(rt.container).run(input=None, throw_on_error=False)
    assert result.status is RunStatus.FAILED
    assert result.errors[0].message == "cannot read caf\\udce9"
    stored = await rt.workflows.get_run(result.run_id)
    assert stored.error is not None and stored.error.message == "cannot read caf\\udce9"
