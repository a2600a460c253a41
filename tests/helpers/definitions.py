"""Building blocks of test definitions: workflows in both styles, subscribers, jobs, runtimes.

A :class:`Probe` records what the steps of a test workflow did and steers them;
:func:`abc` builds one saga in either authoring style; :func:`chain` many trivial
steps; :func:`sub`, :func:`subscriber_from` and :func:`job_from` build subscribers and
jobs as a project or discovery would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Literal

import anyio

from runtime import (
    DurableWorkflow,
    Job,
    RunStatus,
    Runtime,
    StepContext,
    StepStatus,
    Subscriber,
    SubscriberArgs,
    SubscriberConfig,
    WorkflowContext,
    WorkflowDefinition,
    WorkflowResponse,
    WorkflowResult,
    create_step,
    create_workflow,
    workflow,
)
from tests.helpers.waiting import wait_status

Style = Literal["durable", "composition"]
STYLES: tuple[Style, ...] = ("durable", "composition")


LATER = 3600.0
"""A start delay that keeps a queued run away from the worker for the whole test."""

PARKED = {"max_retries": 1, "retry_interval": 600}
"""Step options with which a failed attempt parks the run sleeping (for the whole test)."""


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


async def paused_after_a(rt: Runtime, flow: Any, probe: Probe) -> str:
    """Start ``flow`` (an :func:`abc`) and pause it after its step ``a`` completed; its run id."""
    probe.hold("a")
    handle = await rt.workflows.run(flow)
    with anyio.fail_after(5):
        await probe.entered("a")
    await rt.workflows.pause(handle.run_id)
    probe.release("a")
    await wait_status(rt, handle.run_id, RunStatus.PAUSED)
    return handle.run_id


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


def chain(
    name: str, length: int, on_step: Callable[[str, int], None] | None = None
) -> WorkflowDefinition:
    """``length`` steps each adding one to ``input["start"]``; ``on_step(run_id, index)``
    is called as each step runs (for tests that need many fast steps and to watch them)."""

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


FAST = 0.01
"""A ``retry_interval`` for tests: a few milliseconds of backoff."""


async def run_inline(
    workflow: WorkflowDefinition, rt: Runtime, input: Any = None, **kwargs: Any
) -> WorkflowResult:
    """``workflow(rt.container).run(...)``, bounded to five seconds."""
    with anyio.fail_after(5):
        return await workflow(rt.container).run(input=input, **kwargs)


def steps_of(record: Any) -> list[tuple[str, StepStatus]]:
    """The (name, status) of each step of a run record, in order."""
    return [(s.name, s.status) for s in record.steps]


def steps_and_attempts(record: Any) -> list[tuple[str, StepStatus, int]]:
    """The (name, status, attempts) of each step of a run record, in order."""
    return [(s.name, s.status, s.attempts) for s in record.steps]


# -- subscribers and jobs --------------------------------------------------------------

Handler = Callable[[SubscriberArgs], Awaitable[None]]

QUIET_TIME = datetime(2026, 3, 10, 12, 7, 30, tzinfo=UTC)
"""A start for a ``ManualClock`` that is minutes away from any example job's firing."""


def sub(subscriber_id: str, handler: Handler, event: str | list[str], **config: Any) -> Subscriber:
    """A subscriber of ``event`` built in code."""
    return Subscriber(subscriber_id, handler, SubscriberConfig(event=event, **config))


def subscriber_from(module: ModuleType) -> Subscriber:
    """The subscriber a module of ``subscribers/`` defines, as discovery builds it."""
    config = module.config
    subscriber_id = config.subscriber_id or module.__name__.rsplit(".", 1)[-1]
    return Subscriber(subscriber_id, module.handler, config, str(module.__file__))


def job_from(module: ModuleType) -> Job:
    """The job a module of ``jobs/`` defines, as discovery builds it."""
    return Job(module.handler, module.config, str(module.__file__))


@asynccontextmanager
async def running(
    db_url: str,
    subscribers: Sequence[Subscriber] = (),
    workflows: Sequence[WorkflowDefinition] = (),
    *,
    interval: float = 30.0,
) -> AsyncIterator[Runtime]:
    """A started ``Runtime`` with these subscribers and workflows.

    A long scan interval by default: whatever happens promptly was woken, not polled.
    """
    async with Runtime(
        database=db_url, subscribers=subscribers, workflows=workflows, interval=interval
    ) as rt:
        yield rt
