"""Running a workflow of either style from a container: ``await wf(container).run(...)``.

Both definition classes return a :class:`BoundWorkflow` when called with a
container; it finds the runtime's workflow API there (``Workflows``, under
:data:`WORKFLOWS_KEY`) and waits for the run's :class:`WorkflowResult`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from runtime.errors import NotConfiguredError, RunFailed, StepFailed, StepTimeoutError
from runtime.models import RunStatus, StepError

if TYPE_CHECKING:
    from runtime.container import Container

WORKFLOWS_KEY = "runtime.workflows"
"""The container name under which a runtime registers its workflow API (``rt.workflows``).

Namespaced, so an application's own service named ``workflows`` cannot hide the
runtime from ``wf(container).run()`` (the runtime also registers ``workflows`` when
the application has not taken that name)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowResult:
    """The outcome of ``workflow(container).run(...)``.

    Attributes:
        result: the workflow's output (``None`` unless completed).
        run_id: the run's id.
        status: the run's final status.
        errors: the errors of failed steps and compensations.
    """

    result: Any
    run_id: str
    status: RunStatus
    errors: list[StepError]


class Named(Protocol):
    """What a bound workflow needs of its definition: a name for its messages."""

    @property
    def name(self) -> str: ...


W = TypeVar("W", bound=Named)
W_contra = TypeVar("W_contra", bound=Named, contravariant=True)


class WorkflowExecutor(Protocol[W_contra]):
    """What a bound workflow calls: the runtime's workflow API (``Workflows``), which runs
    a workflow in the caller's task through the engine."""

    async def run_inline(
        self, workflow: W_contra, container: Container, input: Any, transaction_id: str | None
    ) -> WorkflowResult: ...


class BoundWorkflow(Generic[W]):
    """A workflow bound to a container; ``run`` executes it in the caller's task."""

    __slots__ = ("container", "workflow")

    def __init__(self, workflow: W, container: Container) -> None:
        self.workflow = workflow
        self.container = container

    async def run(
        self,
        *,
        input: Any = None,
        transaction_id: str | None = None,
        throw_on_error: bool = True,
    ) -> WorkflowResult:
        """Execute the workflow in this task, checkpointing every step.

        Args:
            input: the workflow input (JSON-serializable).
            transaction_id: a key unique per workflow; a second run with it resumes the
                unfinished run or returns the finished one.
            throw_on_error: raise the failing step's error (:class:`StepFailed`) when the
                run does not complete; with ``False`` it is in ``result.errors``.
        """
        try:
            api: WorkflowExecutor[W] = self.container.resolve(WORKFLOWS_KEY)
        except LookupError:
            raise NotConfiguredError(
                f"workflow {self.workflow.name!r} was run through a container with no runtime "
                "behind it; use the container of a Runtime: "
                "async with Runtime(database=...) as rt: await wf(rt.container).run(...)"
            ) from None
        result = await api.run_inline(self.workflow, self.container, input, transaction_id)
        if throw_on_error and result.status is not RunStatus.COMPLETED:
            if not result.errors:
                raise RunFailed(result.run_id, result.status.value, None)
            first = result.errors[0]
            # The stored type tells a timeout apart, so `except TimeoutError` works too.
            error_class = (
                StepTimeoutError if first.type == StepTimeoutError.__name__ else StepFailed
            )
            raise error_class(
                first.step or self.workflow.name, first.type, first.message, result.run_id
            )
        return result
