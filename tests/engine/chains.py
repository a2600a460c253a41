"""A workflow of trivial steps, for tests that need many fast steps and to watch them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime import StepContext, WorkflowDefinition, create_step, create_workflow


def chain(
    name: str, length: int, on_step: Callable[[str, int], None] | None = None
) -> WorkflowDefinition:
    """``length`` steps each adding one to ``input["start"]``; ``on_step(run_id, index)``
    is called as each step runs."""

    def make(index: int) -> Any:
        async def bump(value: int, ctx: StepContext) -> int:
            if on_step is not None:
                on_step(ctx.run_id, index)
            return value + 1

        return create_step(f"step-{index}", bump)

    steps = [make(i) for i in range(length)]

    def flow(input: Any) -> Any:
        value = input["start"]
        for step in steps:
            value = step(value)
        return value

    return create_workflow(name, flow)
