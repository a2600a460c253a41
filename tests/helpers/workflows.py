"""Helpers shared by the durable and management tests: a probe and one workflow in both styles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio

from runtime import (
    DurableWorkflow,
    RunStatus,
    Runtime,
    WorkflowContext,
    WorkflowDefinition,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)

Style = Literal["durable", "composition"]
STYLES: tuple[Style, ...] = ("durable", "composition")


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``check`` every few milliseconds until it holds (bounded)."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - polls the store, bounded by fail_after
            await anyio.sleep(0.005)


async def wait_status(rt: Runtime, run_id: str, *statuses: RunStatus, timeout: float = 5.0) -> Any:
    """Wait until the run is in one of ``statuses``; return its record (with steps)."""
    seen: list[Any] = []

    async def reached() -> bool:
        seen[:] = [await rt.workflows.get_run(run_id)]
        return seen[0].status in statuses

    await wait_until(reached, timeout)
    return seen[0]


class Probe:
    """What the steps and compensations of a test workflow did, and levers to steer them.

    ``calls`` lists every call in order (``"a"``, ``"undo a"``...). ``hold(name)`` makes
    the next call of ``name`` wait until ``release(name)``; ``fail(name, n)`` makes its
    next ``n`` calls raise ``RuntimeError``.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._gates: dict[str, anyio.Event] = {}
        self._failures: dict[str, int] = {}

    def hold(self, name: str) -> None:
        self._gates[name] = anyio.Event()

    def release(self, name: str) -> None:
        self._gates.pop(name).set()

    def fail(self, name: str, times: int = 1) -> None:
        self._failures[name] = times

    async def call(self, name: str) -> str:
        self.calls.append(name)
        gate = self._gates.get(name)
        if gate is not None:
            await gate.wait()
            self._gates.pop(name, None)
        if self._failures.get(name, 0) > 0:
            self._failures[name] -= 1
            raise RuntimeError(f"{name} broke")
        return name

    async def undo(self, value: str) -> None:
        await self.call(f"undo {value}")

    async def entered(self, name: str, times: int = 1) -> None:
        """Wait until ``name`` has been called ``times`` times (bounded by the caller)."""
        while self.calls.count(name) < times:  # noqa: ASYNC110 - bounded by the caller
            await anyio.sleep(0.002)


def abc(
    style: Style,
    probe: Probe,
    *,
    name: str = "abc",
    b_options: dict[str, Any] | None = None,
    nap: float | None = None,
    undo_b: bool = True,
) -> DurableWorkflow | WorkflowDefinition:
    """Steps ``a`` and ``b`` (each undone by ``undo``) then ``c`` (nothing to undo).

    Output: ``["a", "b", "c"]``. ``nap`` (durable only) sleeps durably between ``a`` and
    ``b``; ``undo_b=False`` leaves ``b`` without a compensation.
    """
    options = dict(b_options or {})
    undo_of_b = probe.undo if undo_b else None
    if style == "durable":

        @workflow(name=name)
        async def flow(ctx: WorkflowContext[Any]) -> list[str]:
            a = await ctx.step("a", probe.call, "a", compensate=probe.undo)
            if nap is not None:
                await ctx.sleep("nap", nap)
            b = await ctx.step("b", probe.call, "b", compensate=undo_of_b, **options)
            c = await ctx.step("c", probe.call, "c")
            return [a, b, c]

        return flow
    assert nap is None, "a composition workflow has no durable sleep"

    async def run_a(input: Any) -> str:
        return await probe.call("a")

    async def run_b(input: Any) -> str:
        return await probe.call("b")

    async def run_c(input: Any) -> str:
        return await probe.call("c")

    step_a = create_step("a", run_a, compensate=probe.undo)
    step_b = create_step("b", run_b, compensate=undo_of_b, **options)
    step_c = create_step("c", run_c)
    return create_workflow(
        name, lambda input: WorkflowResponse([step_a(input), step_b(input), step_c(input)])
    )
