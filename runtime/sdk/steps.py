"""Steps: ``create_step``, ``StepResponse`` and the context a step receives."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol, overload

from runtime.codec import dumps
from runtime.errors import DefinitionError
from runtime.limits import MAX_RETRIES, count, duration, text
from runtime.sdk.specs import check_event_name
from runtime.usercode import run_in_thread

if TYPE_CHECKING:
    from runtime.container import Container
    from runtime.sdk.refs import Ref

StepFn = Callable[..., Any]
"""A step's invoke or compensate function: ``(input, ctx)``, ``(input)`` or ``()``."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class StepRecorder(Protocol):
    """What a step call inside a workflow constructor records itself into.

    :class:`runtime.sdk.graph.Builder` is the one implementation; the protocol lets
    steps depend on it without importing the graph (which imports steps).
    """

    def add_step(self, step: StepDefinition, input: Any) -> Ref:
        """Record a call of ``step`` on ``input``; return the reference to its output."""
        ...


RECORDER: ContextVar[StepRecorder | None] = ContextVar("runtime_workflow_builder", default=None)
"""The recorder of the workflow constructor running now (set by ``Builder``), if any."""


class StepResponse:
    """What a step returns: its output and what its compensation will receive.

    Args:
        output: the step's result, passed to later steps (must be JSON-serializable).
        compensate_input: what the compensation receives; defaults to ``output``.
    """

    __slots__ = ("compensate_input", "failure_message", "output", "skipped")

    def __init__(self, output: Any = None, compensate_input: Any = MISSING) -> None:
        self.output = output
        self.compensate_input = output if compensate_input is MISSING else compensate_input
        self.failure_message: str | None = None
        self.skipped = False

    @classmethod
    def permanent_failure(cls, message: str, compensate_input: Any = None) -> StepResponse:
        """Fail the step at once, with no retries.

        Its own compensation receives ``compensate_input``.
        """
        response = cls(None, compensate_input)
        response.failure_message = message
        return response

    @classmethod
    def skip(cls) -> StepResponse:
        """Mark the step skipped: its output is ``None`` and it is never compensated."""
        response = cls(None, None)
        response.skipped = True
        return response

    def __repr__(self) -> str:
        if self.failure_message is not None:
            return f"StepResponse.permanent_failure({self.failure_message!r})"
        if self.skipped:
            return "StepResponse.skip()"
        return f"StepResponse({self.output!r})"


class StepContext:
    """What a step (and its compensation) receives as ``ctx``.

    Attributes:
        container: the runtime's container, to resolve services.
        run_id: the run this step belongs to.
        workflow: the workflow's name.
        step: the step's name.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        idempotency_key: ``"{run_id}:{sequence number}"``, stable across retries and
            resumes of this step in this run and unique to it; pass it to external APIs
            to make their effect exactly-once.
    """

    __slots__ = (
        "_base_logger",
        "_hooks",
        "_logger",
        "attempt",
        "container",
        "idempotency_key",
        "run_id",
        "staged",
        "step",
        "workflow",
    )

    def __init__(
        self,
        *,
        container: Container,
        run_id: str,
        workflow: str,
        step: str,
        seq: int,
        attempt: int,
        logger: Any,
        hooks: EngineHooks,
    ) -> None:
        self.container = container
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.attempt = attempt
        # The step's place in the run, not its name: a durable workflow may run two
        # steps of one name, and each must get its own key.
        self.idempotency_key = f"{run_id}:{seq}"
        self._base_logger = logger
        self._logger: Any = None
        self._hooks = hooks
        self.staged: list[tuple[str, str, str]] = []

    def emit(self, name: str, data: Any = None, *, metadata: dict[str, Any] | None = None) -> None:
        """Stage an event; it is published only if the run completes.

        The event belongs to this attempt: it is kept with the step's checkpoint
        when the step succeeds, and dropped if the attempt fails.

        Raises:
            DefinitionError: a bad event name.
            SerializationError: ``data`` or ``metadata`` cannot be stored as JSON.
        """
        check_event_name(name)
        self.staged.append(
            (
                name,
                dumps(data, f"the data of event {name!r}"),
                dumps(metadata or {}, f"the metadata of event {name!r}"),
            )
        )

    @property
    def logger(self) -> Any:
        """A structlog logger bound to the run, the workflow and the step."""
        if self._logger is None:
            self._logger = self._base_logger.bind(
                run_id=self.run_id, workflow=self.workflow, step=self.step
            )
        return self._logger


class EngineHooks(Protocol):
    """What the executor lets a step reach (child workflows); implemented by the engine."""

    async def run_child(self, ctx: StepContext, workflow: Any, input: Any) -> tuple[str, Any]:
        """Run ``workflow`` as a child of ``ctx``'s run; return (child run id, output)."""
        ...

    async def roll_back_child(self, ctx: StepContext, child_run_id: str) -> None:
        """Compensate a finished child run's completed steps."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class StepOptions:
    """How the executor treats a step: retries, timeout, failure policy.

    ``retry_interval`` and ``timeout`` may be given as seconds or ``timedelta``, however
    the options come (``create_step``, ``with_options``, ``ctx.step``); they are kept
    as seconds.
    """

    max_retries: int = 0
    retry_interval: float = 1.0
    timeout: float | None = None
    skip_on_permanent_failure: bool = False
    continue_on_permanent_failure: bool = False

    def __post_init__(self) -> None:
        count(self.max_retries, "max_retries", minimum=0, maximum=MAX_RETRIES)
        object.__setattr__(self, "retry_interval", duration(self.retry_interval, "retry_interval"))
        if self.timeout is not None:
            object.__setattr__(self, "timeout", duration(self.timeout, "timeout", positive=True))
        if self.skip_on_permanent_failure and self.continue_on_permanent_failure:
            raise DefinitionError(
                "skip_on_permanent_failure and continue_on_permanent_failure exclude each other"
            )


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class StepDefinition:
    """A step: a name, an invoke function, an optional compensation, options.

    Call it inside a workflow constructor to add it to the workflow; the call
    returns a reference to its output. ``@step.compensate`` attaches the
    compensation; ``step.with_options(name=...)`` makes a renamed copy, to use
    one function twice in one workflow.
    """

    name: str
    invoke: StepFn
    options: StepOptions
    compensation: list[StepFn] = dataclasses.field(default_factory=list, repr=False)

    kind: ClassVar[str] = "step"

    def __call__(self, input: Any = None) -> Ref:
        recorder = RECORDER.get()
        if recorder is None:
            raise_outside(self.name)
        return recorder.add_step(self, input)

    @property
    def compensate_fn(self) -> StepFn | None:
        """The compensation function, if one is attached."""
        return self.compensation[0] if self.compensation else None

    def compensate(self, fn: StepFn) -> StepFn:
        """Attach ``fn`` as this step's compensation (decorator); returns ``fn``."""
        if self.compensation:
            raise DefinitionError(f"step {self.name!r} already has a compensation")
        check_step_fn(fn, f"compensation of step {self.name!r}")
        self.compensation.append(fn)
        return fn

    def with_options(self, *, name: str | None = None, **options: Any) -> StepDefinition:
        """A copy with another name and/or other options (same functions).

        The copy has the compensation the step has now; one attached to either
        afterwards belongs to that one only.
        """
        merged = dataclasses.asdict(self.options) | _options(options)
        return StepDefinition(
            name=_check_name(name or self.name),
            invoke=self.invoke,
            options=StepOptions(**merged),
            compensation=list(self.compensation),
        )


def raise_outside(name: str) -> NoReturn:
    """Raise the error for a step called outside a workflow constructor."""
    from runtime.errors import StepOutsideWorkflowError

    raise StepOutsideWorkflowError(
        f"step {name!r} was called outside a workflow constructor; call it inside the "
        "function given to create_workflow(...), or run it in a durable workflow with "
        "ctx.step(step, input)"
    )


def check_step_fn(fn: Any, what: str) -> None:
    """Refuse what cannot be a step function, at definition time."""
    if not callable(fn):
        raise DefinitionError(f"{what} must be a function, got {fn!r}")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 2 and not variadic:
        raise DefinitionError(f"{what} takes (input, ctx) at most; {fn!r} requires {len(required)}")


CTX_ONLY = -1
_CTX_NAMES = ("ctx", "context")


@functools.lru_cache(maxsize=4096)
def arity(fn: StepFn) -> int:
    """Which of (input, ctx) a step function takes: 0, 1 (input), 2 (both) or CTX_ONLY.

    Only parameters without a default count: ``lambda x, i=i: ...`` (a loop's
    variable bound at definition) takes the input alone, and keeps its ``i``. A
    function of one such parameter gets the context, not the input, when that
    parameter is named ``ctx``/``context`` or annotated ``StepContext``.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) == 1:
        only = positional[0]
        annotation = only.annotation
        named = getattr(annotation, "__name__", annotation)
        if only.name in _CTX_NAMES or named == "StepContext":
            return CTX_ONLY
    return min(len(positional), 2)


async def call_step_fn(fn: StepFn, input: Any, ctx: StepContext) -> Any:
    """Call a step function with the arguments it takes (see :func:`run_callable`)."""
    takes = arity(fn)
    if takes >= 2:
        return await run_callable(fn, input, ctx)
    if takes == 1:
        return await run_callable(fn, input)
    if takes == CTX_ONLY:
        return await run_callable(fn, ctx)
    return await run_callable(fn)


async def run_callable(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a step's function: an async one on the event loop, a plain one in a thread.

    A plain function may block (a database driver, an HTTP client) without stalling
    the runtime's other runs, its heartbeat or its ``timeout``: past the timeout the
    attempt fails at once and the thread is left to finish on its own (a daemon thread,
    so it does not hold up the process's exit either). What a plain function returns
    is awaited when it is awaitable.
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await run_in_thread(functools.partial(fn, *args))
    if inspect.isawaitable(result):
        result = await result
    return result


def _check_name(name: Any) -> str:
    return text(name, "a step name")


_OPTION_NAMES = {f.name for f in dataclasses.fields(StepOptions)}


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise DefinitionError(
            f"unknown step option(s) {sorted(unknown)}; known: {sorted(_OPTION_NAMES)}"
        )
    return dict(options)


@overload
def create_step(
    name: str, invoke: None = None, compensate: StepFn | None = None, **options: Any
) -> Callable[[StepFn], StepDefinition]: ...


@overload
def create_step(
    name: str, invoke: StepFn, compensate: StepFn | None = None, **options: Any
) -> StepDefinition: ...


def create_step(
    name: str, invoke: StepFn | None = None, compensate: StepFn | None = None, **options: Any
) -> StepDefinition | Callable[[StepFn], StepDefinition]:
    """Define a step.

    With ``invoke`` it returns the step; without, it is a decorator::

        @create_step("reserve-inventory", max_retries=2)
        async def reserve_inventory(order, ctx) -> StepResponse: ...

        @reserve_inventory.compensate
        async def release_inventory(ids, ctx) -> None: ...

    Args:
        name: unique within a workflow.
        invoke: ``async (input, ctx) -> StepResponse | value`` (``(input)`` and
            ``()`` signatures, and plain functions, are accepted too).
        compensate: ``async (compensate_input, ctx) -> None``.
        **options: ``max_retries`` (default 0), ``retry_interval`` (seconds or
            ``timedelta``, default 1.0, grows exponentially with jitter),
            ``timeout``, ``skip_on_permanent_failure``,
            ``continue_on_permanent_failure``.
    """
    step_name = _check_name(name)
    step_options = StepOptions(**_options(options))

    def build(fn: StepFn) -> StepDefinition:
        if inspect.isclass(fn):
            raise DefinitionError(f"step {step_name!r}: expected a function, got class {fn!r}")
        check_step_fn(fn, f"step {step_name!r}")
        step = StepDefinition(name=step_name, invoke=fn, options=step_options)
        if compensate is not None:
            step.compensate(compensate)
        return step

    if invoke is None:
        return build
    return build(invoke)
