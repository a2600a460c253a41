"""The hello-world workflows: one step, two steps with transform, and the rollback demo."""

from __future__ import annotations

import pytest

from runtime import RunStatus, Runtime, StepFailed
from workflows.hello_world import hello_world, hello_world_rollback, hello_world_two_steps


async def test_hello_world_returns_the_message_of_step_one(rt: Runtime) -> None:
    result = await hello_world(rt.container).run()

    assert result.result == {"message": "Hello from step one!"}
    assert result.status is RunStatus.COMPLETED
    assert result.errors == []
    run = await rt.workflows.get_run(result.run_id)
    assert run.workflow == "hello-world"
    assert run.status is RunStatus.COMPLETED
    assert [(s.name, s.status, s.attempts, s.output) for s in run.steps] == [
        ("step-1", "completed", 1, "Hello from step one!")
    ]


async def test_two_steps_combine_their_messages_with_transform(rt: Runtime) -> None:
    result = await hello_world_two_steps(rt.container).run(input={"name": "Ada"})

    assert result.result == {"message": "Hello from step one!\nHello Ada from step two!"}
    run = await rt.workflows.get_run(result.run_id)
    assert run.input == {"name": "Ada"}
    assert run.output == result.result
    assert [(s.name, s.output) for s in run.steps] == [
        ("step-1", "Hello from step one!"),
        ("step-2", "Hello Ada from step two!"),
    ]


async def test_a_failing_step_two_rolls_back_step_one(rt: Runtime) -> None:
    console = rt.container.resolve("console")

    result = await hello_world_rollback(rt.container).run(
        input={"name": "Ada"}, throw_on_error=False
    )

    assert console.lines == ["Hello from step one!", "Oops! Rolling back my changes..."]
    assert result.status is RunStatus.FAILED
    assert result.result is None
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("step-2", "RuntimeError", "Throwing an error...")
    ]
    run = await rt.workflows.get_run(result.run_id)
    assert run.status is RunStatus.FAILED
    assert [(s.name, s.status) for s in run.steps] == [
        ("step-1", "compensated"),
        ("step-2", "failed"),
    ]
    assert run.steps[1].error is not None
    assert run.steps[1].error.message == "Throwing an error..."


async def test_the_rollback_demo_raises_step_failed_by_default(rt: Runtime) -> None:
    with pytest.raises(StepFailed) as caught:
        await hello_world_rollback(rt.container).run(input={"name": "Ada"})

    assert caught.value.step == "step-2"
    assert caught.value.error_type == "RuntimeError"
    assert caught.value.message == "Throwing an error..."
    # The rollback has finished by the time run() raises.
    assert rt.container.resolve("console").lines[-1] == "Oops! Rolling back my changes..."
