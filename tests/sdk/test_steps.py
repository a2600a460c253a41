"""Definition-time behaviour of steps: ``create_step``, its options, compensations, signatures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

from runtime import (
    DefinitionError,
    Runtime,
    StepDefinition,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
)


async def _echo(value: Any) -> Any:
    return value


# -- create_step --------------------------------------------------------------


def test_create_step_function_form_returns_a_step_with_default_options() -> None:
    step = create_step("charge", _echo)

    assert isinstance(step, StepDefinition)
    assert step.name == "charge"
    assert step.invoke is _echo
    assert step.compensate_fn is None
    assert step.options.max_retries == 0
    assert step.options.retry_interval == 1.0
    assert step.options.timeout is None
    assert step.options.skip_on_permanent_failure is False
    assert step.options.continue_on_permanent_failure is False


def test_create_step_decorator_form_keeps_the_function_and_options() -> None:
    @create_step("reserve", max_retries=2, retry_interval=0.5, timeout=3)
    async def reserve(order: dict[str, Any], ctx: Any) -> StepResponse:
        return StepResponse(order)

    assert isinstance(reserve, StepDefinition)
    assert reserve.name == "reserve"
    assert reserve.options.max_retries == 2
    assert reserve.options.retry_interval == 0.5
    assert reserve.options.timeout == 3.0


def test_compensate_decorator_attaches_and_returns_the_function() -> None:
    step = create_step("reserve", _echo)

    async def release(ids: list[str], ctx: Any) -> None:
        return None

    returned = step.compensate(release)

    assert returned is release
    assert step.compensate_fn is release


def test_compensate_given_to_create_step_is_attached() -> None:
    async def undo(value: Any) -> None:
        return None

    step = create_step("reserve", _echo, compensate=undo)

    assert step.compensate_fn is undo


def test_a_second_compensation_is_refused() -> None:
    step = create_step("reserve", _echo)
    step.compensate(_echo)

    with pytest.raises(DefinitionError, match="already has a compensation"):
        step.compensate(_echo)


@pytest.mark.parametrize("bad", [-1, "3", 1.5, True, None])
def test_bad_max_retries_is_refused(bad: Any) -> None:
    with pytest.raises(DefinitionError, match="max_retries"):
        create_step("s", _echo, max_retries=bad)


@pytest.mark.parametrize("bad", [-1, -0.5, 0, timedelta(seconds=-2)])
def test_non_positive_timeout_is_refused(bad: Any) -> None:
    with pytest.raises(DefinitionError, match="timeout"):
        create_step("s", _echo, timeout=bad)


def test_negative_retry_interval_is_refused() -> None:
    with pytest.raises(DefinitionError, match="retry_interval"):
        create_step("s", _echo, retry_interval=-1)


def test_a_duration_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(DefinitionError, match="timeout"):
        create_step("s", _echo, timeout="5s")


def test_unknown_option_is_refused_and_named() -> None:
    with pytest.raises(DefinitionError, match="retries") as caught:
        create_step("s", _echo, retries=3)

    assert "max_retries" in str(caught.value)  # the known options are listed


def test_unknown_option_is_refused_in_the_decorator_form_too() -> None:
    with pytest.raises(DefinitionError, match="colour"):
        create_step("s", colour="blue")


def test_timedelta_durations_are_accepted_as_seconds() -> None:
    step = create_step(
        "s", _echo, retry_interval=timedelta(milliseconds=250), timeout=timedelta(minutes=2)
    )

    assert step.options.retry_interval == 0.25
    assert step.options.timeout == 120.0


def test_skip_and_continue_on_permanent_failure_exclude_each_other() -> None:
    with pytest.raises(DefinitionError, match="exclude each other"):
        create_step("s", _echo, skip_on_permanent_failure=True, continue_on_permanent_failure=True)


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_a_step_name_must_be_a_non_empty_string(bad: Any) -> None:
    with pytest.raises(DefinitionError, match="step name"):
        create_step(bad, _echo)


def test_a_function_that_needs_more_than_input_and_ctx_is_refused() -> None:
    async def three(a: Any, b: Any, c: Any) -> None:
        return None

    with pytest.raises(DefinitionError, match="at most"):
        create_step("s", three)


def test_a_class_is_not_a_step_function() -> None:
    class NotAFunction:
        pass

    with pytest.raises(DefinitionError, match="expected a function"):
        create_step("s", NotAFunction)


def test_with_options_copies_the_step_and_keeps_its_compensation() -> None:
    step = create_step("s", _echo, max_retries=1)
    step.compensate(_echo)

    copy = step.with_options(name="s2", timeout=5)

    assert copy is not step
    assert (copy.name, copy.options.max_retries, copy.options.timeout) == ("s2", 1, 5.0)
    assert copy.compensate_fn is _echo
    assert (step.name, step.options.timeout) == ("s", None)  # the original is untouched


def test_a_compensation_attached_to_a_copy_is_not_the_original_s() -> None:
    """Bug: the copy shared the original's compensation list, so attaching a compensation
    to one attached it to both (and the other could no longer get one of its own)."""
    step = create_step("s", _echo)
    copy = step.with_options(name="s2")

    async def undo_copy(value: Any) -> None: ...

    async def undo_step(value: Any) -> None: ...

    copy.compensate(undo_copy)
    assert step.compensate_fn is None
    step.compensate(undo_step)
    assert (step.compensate_fn, copy.compensate_fn) == (undo_step, undo_copy)


def test_with_options_validates_like_create_step() -> None:
    step = create_step("s", _echo)

    with pytest.raises(DefinitionError, match="max_retries"):
        step.with_options(max_retries=-2)
    with pytest.raises(DefinitionError, match="nonsense"):
        step.with_options(nonsense=1)


def test_a_one_parameter_step_named_ctx_gets_the_context() -> None:
    from runtime.sdk.steps import CTX_ONLY, StepContext, arity

    async def by_name(ctx): ...  # type: ignore[no-untyped-def]
    async def by_type(c: StepContext) -> None: ...
    async def input_only(order: dict) -> None: ...  # type: ignore[type-arg]

    assert arity(by_name) == CTX_ONLY
    assert arity(by_type) == CTX_ONLY
    assert arity(input_only) == 1


async def test_a_parameter_with_a_default_never_receives_the_context(db_url: str) -> None:
    """Bug: parameters with defaults were counted, so ``fn(x, i=i)`` (a loop's variable
    bound at definition) was called with the context as ``i``."""
    from runtime.sdk.steps import arity

    steps = [create_step(f"add-{i}", lambda x, i=i: x + i) for i in range(3)]
    assert [arity(s.invoke) for s in steps] == [1, 1, 1]
    assert arity(lambda i=1: i) == 0

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse([step(input) for step in steps])

    workflow = create_workflow("bound", flow)
    async with Runtime(database=db_url) as rt:
        with anyio.fail_after(5):
            result = await workflow(rt.container).run(input=10)
    assert result.result == [10, 11, 12]
