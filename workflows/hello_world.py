"""Hello world: the first workflows of Medusa's workflow chapter, in three versions.

1. ``hello-world``: one step that returns a greeting.
2. ``hello-world-two-steps``: a second step takes the workflow's input, and
   ``transform`` combines both steps' results into one message.
3. ``hello-world-rollback``: step two throws, so step one's compensation runs.

Run one from code::

    async with Runtime(database="sqlite:///app.db", container=container) as rt:
        result = await hello_world_two_steps(rt.container).run(input={"name": "Ada"})
        print(result.result["message"])

The seeds also run ``hello-world`` from an API route, a ``customer.created``
subscriber and a daily job; those arrive with the event bus and the scheduler.
"""

from __future__ import annotations

from typing import Any, TypedDict

from runtime import (
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
    transform,
)


class WorkflowInput(TypedDict):
    """The input of ``hello-world-two-steps`` and ``hello-world-rollback``."""

    name: str


# -- 1. one step ------------------------------------------------------------


@create_step("step-1")
async def step_1() -> StepResponse:
    """Say hello. A step may take no input at all."""
    return StepResponse("Hello from step one!")


def hello_world_flow() -> WorkflowResponse:
    # This function runs once, when the module is imported: `str1` is a reference
    # to step one's output, filled in each time the workflow runs. (`input`, in the
    # constructors below, is a reference too.)
    str1 = step_1()
    return WorkflowResponse({"message": str1})


hello_world = create_workflow("hello-world", hello_world_flow)


# -- 2. two steps, input, transform ------------------------------------------


@create_step("step-2")
async def step_2(input: WorkflowInput) -> StepResponse:
    """Greet the name given in the workflow's input."""
    return StepResponse(f"Hello {input['name']} from step two!")


def _join_messages(data: dict[str, Any]) -> dict[str, str]:
    return {"message": f"{data['str1']}\n{data['str2']}"}


def hello_world_two_steps_flow(input: Any) -> WorkflowResponse:
    str1 = step_1()
    str2 = step_2(input)
    # An f-string on `str1` here would fail: the values only exist at run time.
    # `transform` runs `_join_messages` then, on the real values.
    result = transform({"str1": str1, "str2": str2}, _join_messages)
    return WorkflowResponse(result)


hello_world_two_steps = create_workflow("hello-world-two-steps", hello_world_two_steps_flow)


# -- 3. rollback --------------------------------------------------------------


@create_step("step-1")
async def step_1_with_rollback(_: None, ctx: StepContext) -> StepResponse:
    """Say hello on the console; the compensation below takes it back.

    A step that needs ``ctx`` takes the input first, even when it has none.
    """
    message = "Hello from step one!"
    ctx.container.resolve("console").log(message)
    return StepResponse(message)


@step_1_with_rollback.compensate
async def roll_back_step_1(_: None, ctx: StepContext) -> None:
    """Runs only when a later step fails for good."""
    ctx.container.resolve("console").log("Oops! Rolling back my changes...")


@create_step("step-2")
async def failing_step_2(input: WorkflowInput) -> StepResponse:
    """Always fails, to show the rollback."""
    raise RuntimeError("Throwing an error...")


def hello_world_rollback_flow(input: Any) -> WorkflowResponse:
    str1 = step_1_with_rollback()
    str2 = failing_step_2(input)
    return WorkflowResponse(transform({"str1": str1, "str2": str2}, _join_messages))


hello_world_rollback = create_workflow("hello-world-rollback", hello_world_rollback_flow)
