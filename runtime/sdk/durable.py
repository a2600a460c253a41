"""Durable workflow functions (Sonamu style): ``@workflow`` and ``WorkflowContext``.

A durable workflow is an ordinary async function of a :class:`WorkflowContext`.
Its side effects go through ``ctx.step``, which runs a function once per run
and returns its stored result when the run is replayed after a crash, a
pause, a sleep or a retry; ``ctx.sleep`` parks the run without holding a
worker; ``ctx.emit`` stages an event published when the run completes. The
code between steps runs again on every replay, so it must be deterministic:
the same steps, in the same order, for the same input and step results.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, overload

from pydantic import TypeAdapter, ValidationError

from runtime import limits
from runtime.errors import DefinitionError, InputValidationError
from runtime.limits import shown, text
from runtime.models import RunKind
from runtime.sdk.running import BoundWorkflow
from runtime.sdk.specs import Schedule
from runtime.sdk.steps import StepDefinition

if TYPE_CHECKING:
    from runtime.container import Container

InputT = TypeVar("InputT")

_STEP_OPTIONS = ("max_retries", "retry_interval", "timeout", "compensate")


class DurableSteps(Protocol):
    """What a context delegates to; implemented by the engine."""

    async def step(
        self, name: str, call: Any, options: dict[str, Any], definition: StepDefinition | None
    ) -> Any: ...

    async def sleep(self, name: str, seconds: float) -> None: ...

    def emit(self, name: str, data: Any, metadata: dict[str, Any] | None) -> None: ...


class WorkflowContext(Generic[InputT]):
    """What a durable workflow function receives.

    Attributes:
        input: the validated input (an instance of the workflow's ``input`` model).
        run_id: this run's id.
        workflow: the workflow's name.
        version: the version this run started with (it keeps it for its whole life).
        logger: a structlog logger bound to the run.
        container: the runtime's container.
    """

    __slots__ = ("_runner", "container", "input", "logger", "run_id", "version", "workflow")

    def __init__(
        self,
        *,
        input: InputT,
        run_id: str,
        workflow: str,
        version: str | None,
        logger: Any,
        container: Container,
        runner: DurableSteps,
    ) -> None:
        self.input = input
        self.run_id = run_id
        self.workflow = workflow
        self.version = version
        self.logger = logger
        self.container = container
        self._runner = runner

    @overload
    async def step(self, name: StepDefinition, input: Any = None, /) -> Any: ...

    @overload
    async def step(
        self, name: str, fn: Callable[..., Any], /, *args: Any, **options: Any
    ) -> Any: ...

    async def step(
        self, name: str | StepDefinition, fn: Any = None, /, *args: Any, **options: Any
    ) -> Any:
        """Run ``fn(*args)`` once for this run and return its (stored) result.

        ``ctx.step("charge", charge_card, order_id, max_retries=3, timeout=10,
        compensate=refund)``: options are ``max_retries``, ``retry_interval``,
        ``timeout`` and ``compensate`` (called with the step's result if the run
        rolls back). ``ctx.step(reserve_inventory, order)`` runs a step made with
        ``create_step``, with its own options and compensation.

        On replay the stored result is returned and ``fn`` is not called; the name
        is checked against the one recorded at this position (a mismatch raises
        :class:`~runtime.errors.NonDeterminismError`). A step that fails for good
        raises :class:`~runtime.errors.StepFailed` here; if the workflow lets it
        propagate, the run rolls back its compensated steps and ends failed.
        """
        if isinstance(name, StepDefinition):
            if args or options:
                raise DefinitionError(
                    f"ctx.step({name.name!r}, input): a create_step step takes one input; "
                    "set its options with create_step(..., max_retries=...)"
                )
            return await self._runner.step(name.name, fn, {}, name)
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"ctx.step needs a step name first, got {name!r}")
        text(name, "ctx.step's step name")
        if not callable(fn):
            raise DefinitionError(f"ctx.step({name!r}, fn, ...): fn must be callable, got {fn!r}")
        unknown = set(options) - set(_STEP_OPTIONS)
        if unknown:
            raise DefinitionError(
                f"ctx.step({name!r}): unknown option(s) {sorted(unknown)}; "
                f"known: {list(_STEP_OPTIONS)} (pass the function's own arguments positionally)"
            )

        return await self._runner.step(name, functools.partial(fn, *args), options, None)

    async def sleep(self, name: str, duration: float | timedelta) -> None:
        """Park the run durably (status ``sleeping``, no worker held) for ``duration``."""
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"ctx.sleep needs a name first, got {name!r}")
        text(name, "ctx.sleep's name")
        await self._runner.sleep(name, limits.duration(duration, "ctx.sleep duration"))

    def emit(self, name: str, data: Any = None, *, metadata: dict[str, Any] | None = None) -> None:
        """Stage an event, published only if the run completes."""
        if metadata is not None and not isinstance(metadata, dict):
            raise DefinitionError(
                f"ctx.emit({name!r}): metadata must be a dict, got {shown(metadata)}"
            )
        self._runner.emit(name, data, metadata)


WorkflowFn = Callable[[WorkflowContext[Any]], Awaitable[Any]]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class DurableWorkflow:
    """A durable workflow: a name, an optional version, the function, its schemas."""

    name: str
    fn: WorkflowFn = dataclasses.field(repr=False)
    version: str | None = None
    input_type: Any = dataclasses.field(default=None, repr=False)
    output_type: Any = dataclasses.field(default=None, repr=False)
    schedules: tuple[Schedule, ...] = ()
    failure_event: tuple[str, dict[str, Any]] | None = dataclasses.field(default=None, repr=False)

    kind: ClassVar[RunKind] = RunKind.DURABLE

    def __call__(self, container: Container) -> BoundWorkflow[DurableWorkflow]:
        return BoundWorkflow(self, container)

    @property
    def _input_adapter(self) -> TypeAdapter[Any] | None:
        return _adapter(self.input_type)

    def validate_input(self, value: Any) -> Any:
        """The input as the workflow sees it (validated), or an InputValidationError."""
        adapter = self._input_adapter
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise InputValidationError(self.name, str(exc)) from exc

    def dump_input(self, value: Any) -> Any:
        """The JSON form of a validated input."""
        adapter = self._input_adapter
        return value if adapter is None else adapter.dump_python(value, mode="json")

    def check_output(self, value: Any) -> Any:
        """The output in JSON form, validated against ``output`` when one is declared.

        Raises:
            ValueError: the output does not match the declared schema.
        """
        adapter = _adapter(self.output_type)
        if adapter is None:
            return value
        try:
            return adapter.dump_python(adapter.validate_python(value), mode="json")
        except ValidationError as exc:
            raise ValueError(f"workflow {self.name!r} returned a bad output: {exc}") from exc


def _adapter(kind: Any) -> TypeAdapter[Any] | None:
    if kind is None:
        return None
    cached = _ADAPTERS.get(id(kind))
    if cached is None or cached[0] is not kind:
        cached = (kind, TypeAdapter(kind))
        _ADAPTERS[id(kind)] = cached
    return cached[1]


_ADAPTERS: dict[int, tuple[Any, TypeAdapter[Any]]] = {}


def snake_case(name: str) -> str:
    """``sendWelcomeEmail`` -> ``send_welcome_email``; ``daily_report`` stays."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.lower()


@overload
def workflow(fn: WorkflowFn, /) -> DurableWorkflow: ...


@overload
def workflow(
    *,
    name: str | None = None,
    version: str | None = None,
    input: Any = None,
    output: Any = None,
    schedules: list[Schedule] | tuple[Schedule, ...] = (),
) -> Callable[[WorkflowFn], DurableWorkflow]: ...


def workflow(
    fn: WorkflowFn | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    input: Any = None,
    output: Any = None,
    schedules: list[Schedule] | tuple[Schedule, ...] = (),
) -> DurableWorkflow | Callable[[WorkflowFn], DurableWorkflow]:
    """Define a durable workflow; bare (``@workflow``) or with arguments.

    Args:
        name: defaults to the function's name in snake_case.
        version: a label such as ``"v2"``; runs keep the version they started with.
        input: a pydantic model (or any type pydantic validates) for the input; a bad
            input is refused at start and creates no run.
        output: the same for the result; a bad result fails the run.
        schedules: :class:`~runtime.sdk.specs.Schedule` objects (names unique per workflow).
    """

    def build(function: WorkflowFn) -> DurableWorkflow:
        if not inspect.iscoroutinefunction(function):
            raise DefinitionError(
                f"@workflow expects an async function `async def f(ctx)`, got {function!r}"
            )
        label = name if name is not None else snake_case(function.__name__)
        text(label, "a workflow name")
        if version is not None and (not isinstance(version, str) or not version):
            raise DefinitionError(f"workflow {label!r}: version must be a non-empty string")
        if isinstance(schedules, str | bytes) or not isinstance(schedules, Iterable):
            got = shown(schedules)
            raise DefinitionError(
                f"workflow {label!r}: schedules must be a list of Schedule(...), got {got}"
            )
        listed = tuple(schedules)
        for item in listed:
            if not isinstance(item, Schedule):
                raise DefinitionError(
                    f"workflow {label!r}: schedules take Schedule(...), got {item!r}"
                )
        names = [s.name for s in listed]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DefinitionError(f"workflow {label!r}: two schedules named {duplicates[0]!r}")
        for kind in (input, output):
            if kind is not None:
                try:
                    _adapter(kind)
                except Exception as exc:
                    # pydantic's message runs over several lines: its first says what is wrong.
                    raise DefinitionError(
                        f"workflow {label!r}: pydantic cannot validate {kind!r}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                    ) from exc
        return DurableWorkflow(
            name=label,
            fn=function,
            version=version,
            input_type=input,
            output_type=output,
            schedules=listed,
        )

    if fn is not None:
        return build(fn)
    return build


def version_key(version: str | None) -> tuple[Any, ...]:
    """Natural order of versions: ``v10`` > ``v2``; no version is older than any version."""
    if version is None:
        return (0,)
    parts = re.split(r"(\d+)", version)
    return (1, *[(0, int(p)) if p.isdigit() else (1, p) for p in parts if p])
