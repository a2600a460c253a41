"""Composition workflows: ``create_workflow``, ``WorkflowResponse``, ``transform``, ``when``,
``parallelize``."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from runtime.errors import DefinitionError
from runtime.limits import text
from runtime.models import RunKind
from runtime.sdk.graph import Builder, Condition, Graph, current_builder
from runtime.sdk.refs import INPUT, Ref
from runtime.sdk.running import BoundWorkflow
from runtime.sdk.specs import Schedule
from runtime.sdk.steps import StepContext, StepDefinition, StepOptions, StepResponse

if TYPE_CHECKING:
    from runtime.container import Container


class WorkflowResponse:
    """What a constructor returns: the template of the workflow's result."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class CompositionWorkflow:
    """A composition workflow: a name and the graph its constructor recorded.

    Call it with a container to run it: ``await wf(container).run(input=...)``.
    """

    name: str
    graph: Graph = dataclasses.field(repr=False)
    version: str | None = None
    schedules: tuple[Schedule, ...] = ()
    failure_event: tuple[str, dict[str, Any]] | None = dataclasses.field(default=None, repr=False)
    """(event name, extra data) published, with the run's error, when a run ends failed."""

    kind: ClassVar[RunKind] = RunKind.COMPOSITION

    def __call__(self, container: Container) -> BoundWorkflow[CompositionWorkflow]:
        return BoundWorkflow(self, container)

    def run_as_step(self, *, input: Any = None, name: str | None = None) -> Ref:
        """Run this workflow as one step of the workflow being constructed.

        Its completed steps are compensated if the parent rolls back.
        """
        builder = current_builder()
        if builder is None:
            raise DefinitionError(
                f"{self.name!r}.run_as_step(...) was called outside a workflow constructor"
            )
        return builder.add_step(_child_step(self, name or self.name), input)


def _child_step(child: CompositionWorkflow, name: str) -> StepDefinition:
    async def invoke(input: Any, ctx: StepContext) -> StepResponse:
        child_run_id, output = await ctx._hooks.run_child(ctx, child, input)
        return StepResponse(output, compensate_input=child_run_id)

    async def compensate(child_run_id: str | None, ctx: StepContext) -> None:
        if child_run_id is not None:
            await ctx._hooks.roll_back_child(ctx, child_run_id)

    return StepDefinition(
        name=name, invoke=invoke, options=StepOptions(), compensation=[compensate]
    )


def create_workflow(
    name: str,
    constructor: Callable[..., Any],
    *,
    version: str | None = None,
    schedule: str | Schedule | None = None,
) -> CompositionWorkflow:
    """Define a composition workflow.

    ``constructor`` runs once, now, with a reference to the input; the steps it
    calls are recorded. It must be a plain (not async) function.

    Args:
        name: unique among the project's workflows.
        constructor: records the steps.
        version: an optional version label.
        schedule: a cron expression or a :class:`~runtime.sdk.specs.Schedule`; the
            service's scheduler then starts a run at each firing (Medusa's
            scheduled workflows).
    """
    schedules: tuple[Schedule, ...] = ()
    if isinstance(schedule, str):
        schedules = (Schedule(cron=schedule),)
    elif isinstance(schedule, Schedule):
        schedules = (schedule,)
    elif schedule is not None:
        raise DefinitionError(
            f"workflow {name!r}: schedule must be a cron string or a Schedule, got {schedule!r}"
        )
    text(name, "a workflow name")
    if not callable(constructor):
        raise DefinitionError(
            f"workflow {name!r}: the constructor must be a function that calls steps, "
            f"got {constructor!r:.60}"
        )
    if inspect.iscoroutinefunction(constructor) or inspect.isasyncgenfunction(constructor):
        raise DefinitionError(
            f"workflow {name!r}: the constructor function must not be async; it runs once "
            "at definition time to record the steps (the steps themselves may be async)"
        )
    if current_builder() is not None:
        raise DefinitionError(f"workflow {name!r} is defined inside another workflow constructor")
    with Builder(name) as builder:
        takes_input = bool(inspect.signature(constructor).parameters)
        returned = constructor(Ref(INPUT)) if takes_input else constructor()
        if inspect.isawaitable(returned):
            close = getattr(returned, "close", None)
            if close is not None:
                close()
            raise DefinitionError(f"workflow {name!r}: the constructor function must not be async")
        output = returned.value if isinstance(returned, WorkflowResponse) else returned
        graph = builder.build(output)
    return CompositionWorkflow(name=name, graph=graph, version=version, schedules=schedules)


def transform(values: Any, *fns: Callable[[Any], Any]) -> Ref:
    """Compute with references: ``fns`` run at run time on the resolved ``values``.

    With several functions, each gets the previous one's result. They must be
    pure: they run again when a run resumes.
    """
    builder = _require_builder("transform")
    if not fns or not all(callable(fn) for fn in fns):
        raise DefinitionError("transform(values, fn, ...) needs at least one function")
    return builder.add_compute(values, fns, "transform")


class When:
    """The result of ``when(values, condition)``; call ``.then(fn)``."""

    __slots__ = ("_condition",)

    def __init__(self, condition: Condition) -> None:
        self._condition = condition

    def then(self, fn: Callable[[], Any]) -> Ref:
        """Record ``fn``'s steps so they run only when the condition holds.

        Returns a reference to what ``fn`` returns (``None`` when the condition is false).
        """
        builder = _require_builder("when(...).then")
        outer = builder.conditions
        builder.conditions = (*outer, self._condition)
        try:
            returned = fn()
        finally:
            builder.conditions = outer
        builder.conditions = (*outer, self._condition)
        try:
            return builder.add_compute(returned, (_identity,), "when")
        finally:
            builder.conditions = outer


def _identity(value: Any) -> Any:
    return value


def when(values: Any, condition: Callable[[Any], Any]) -> When:
    """Branch on run-time values: ``when({"x": ref}, lambda v: v["x"] > 3).then(fn)``."""
    _require_builder("when")
    if not callable(condition):
        raise DefinitionError("when(values, condition): condition must be a function")
    return When(Condition(values, condition))


def parallelize(*refs: Ref) -> tuple[Ref, ...]:
    """Run the given step calls concurrently: ``a, b = parallelize(step_a(x), step_b(y))``."""
    return _require_builder("parallelize").group(refs)


def _require_builder(what: str) -> Builder:
    builder = current_builder()
    if builder is None:
        raise DefinitionError(f"{what}(...) can only be used inside a workflow constructor")
    return builder
