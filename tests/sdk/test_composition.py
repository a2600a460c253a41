"""Definition-time behaviour of the composition SDK: steps, options, references, misuse errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

from runtime import (
    DefinitionError,
    DuplicateStepError,
    ReferenceMisuseError,
    Runtime,
    StepDefinition,
    StepOutsideWorkflowError,
    StepResponse,
    WorkflowDefinition,
    WorkflowResponse,
    create_step,
    create_workflow,
    parallelize,
    transform,
    when,
)


async def _echo(value: Any) -> Any:
    return value


def _step(name: str, **options: Any) -> StepDefinition:
    return create_step(name, _echo, **options)


def _names(workflow: WorkflowDefinition) -> list[str]:
    return [node.key for node in workflow.graph.steps]


def _stage_sizes(workflow: WorkflowDefinition) -> list[int]:
    return [len(stage) for stage in workflow.graph.stages]


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


# -- steps and workflows --------------------------------------------------------


def test_a_step_called_outside_a_workflow_raises() -> None:
    step = _step("lonely")

    with pytest.raises(StepOutsideWorkflowError, match="lonely") as caught:
        step({"x": 1})

    assert isinstance(caught.value, DefinitionError)


def test_the_constructor_runs_once_at_definition_time_and_records_the_steps() -> None:
    calls: list[Any] = []
    first, second = _step("first"), _step("second")

    def flow(input: Any) -> WorkflowResponse:
        calls.append(input)
        out = first(input)
        second({"from_first": out})
        return WorkflowResponse(out)

    workflow = create_workflow("recorded", flow)

    assert len(calls) == 1
    assert _names(workflow) == ["first", "second"]
    assert [node.seq for node in workflow.graph.steps] == [1, 2]
    assert workflow.name == "recorded"
    assert workflow.version is None


def test_two_steps_with_one_name_in_one_workflow_raise() -> None:
    step = _step("charge")

    def flow(input: Any) -> None:
        step(input)
        step(input)

    with pytest.raises(DuplicateStepError, match="charge") as caught:
        create_workflow("dup", flow)

    assert "with_options(name=" in str(caught.value)


def test_with_options_name_fixes_a_duplicate_step() -> None:
    step = _step("charge")

    def flow(input: Any) -> None:
        step(input)
        step.with_options(name="charge-again")(input)

    workflow = create_workflow("dup-fixed", flow)

    assert _names(workflow) == ["charge", "charge-again"]


def test_the_same_step_in_two_workflows_is_fine() -> None:
    step = _step("shared")
    one = create_workflow("one", lambda input: step(input))
    two = create_workflow("two", lambda input: step(input))

    assert _names(one) == _names(two) == ["shared"]


def test_a_builder_error_leaves_no_builder_behind() -> None:
    step = _step("s")

    def flow(input: Any) -> None:
        step(input)
        step(input)

    with pytest.raises(DuplicateStepError):
        create_workflow("broken", flow)
    with pytest.raises(StepOutsideWorkflowError):
        step(1)


def test_an_async_constructor_function_raises() -> None:
    step = _step("s")

    async def flow(input: Any) -> None:
        step(input)

    with pytest.raises(DefinitionError, match="must not be async"):
        create_workflow("async-flow", flow)


def test_a_constructor_returning_an_awaitable_raises() -> None:
    async def inner() -> None:
        return None

    with pytest.raises(DefinitionError, match="must not be async"):
        create_workflow("sneaky", lambda input: inner())


@pytest.mark.parametrize("bad", ["", "  ", None])
def test_a_workflow_name_must_be_a_non_empty_string(bad: Any) -> None:
    with pytest.raises(DefinitionError, match="workflow name"):
        create_workflow(bad, lambda input: None)


def test_a_workflow_defined_inside_a_constructor_raises() -> None:
    def flow(input: Any) -> None:
        create_workflow("inner", lambda i: None)

    with pytest.raises(DefinitionError, match="inside another workflow"):
        create_workflow("outer", flow)


def test_a_reference_from_another_workflow_is_refused() -> None:
    leaked: list[Any] = []
    producer, consumer = _step("producer"), _step("consumer")

    def first(input: Any) -> None:
        leaked.append(producer(input))

    create_workflow("first", first)

    with pytest.raises(DefinitionError, match="another workflow"):
        create_workflow("second", lambda input: consumer(leaked[0]))


@pytest.mark.parametrize("use", ["transform", "when", "parallelize"])
def test_composition_helpers_outside_a_constructor_raise(use: str) -> None:
    calls: dict[str, Callable[[], Any]] = {
        "transform": lambda: transform({}, lambda v: v),
        "when": lambda: when({}, lambda v: True),
        "parallelize": lambda: parallelize(),
    }
    with pytest.raises(DefinitionError, match="inside a workflow constructor"):
        calls[use]()


def test_transform_needs_a_function() -> None:
    with pytest.raises(DefinitionError, match="at least one function"):
        create_workflow("t", lambda input: transform(input))


def test_when_needs_a_callable_condition() -> None:
    with pytest.raises(DefinitionError, match="condition"):
        create_workflow("w", lambda input: when(input, "yes"))


# -- plain Python on a reference --------------------------------------------------


def _misuses() -> dict[str, Callable[[Any], Any]]:
    def truth(ref: Any) -> Any:
        if ref:
            return 1
        return 0

    def iterate(ref: Any) -> Any:
        return [item for item in ref]

    return {
        "if": truth,
        "not": lambda ref: not ref,
        "add": lambda ref: ref + 1,
        "radd": lambda ref: 1 + ref,
        "mul": lambda ref: ref["n"] * 2,
        "fstring": lambda ref: f"hello {ref['name']}",
        "str": lambda ref: str(ref),
        "len": lambda ref: len(ref),
        "iterate": iterate,
        "unpack": lambda ref: tuple(ref),
        "eq": lambda ref: ref == 1,
        "ne": lambda ref: ref["status"] != "paid",
        "lt": lambda ref: ref < 3,
        "in": lambda ref: "x" in ref,
        "int": lambda ref: int(ref),
        "call": lambda ref: ref.upper(),
        "setitem": lambda ref: ref.__setitem__("a", 1),
    }


@pytest.mark.parametrize("misuse", sorted(_misuses()))
def test_plain_python_on_a_reference_raises_naming_transform_and_when(misuse: str) -> None:
    apply = _misuses()[misuse]
    step = _step("s")

    def flow(input: Any) -> None:
        apply(step(input))

    with pytest.raises(ReferenceMisuseError) as caught:
        create_workflow(f"misuse-{misuse}", flow)

    message = str(caught.value)
    assert "transform" in message
    assert "when" in message
    assert "'s'" in message  # it says which reference was misused
    assert isinstance(caught.value, TypeError)


def test_reference_misuse_is_a_definition_error_as_the_exception_tree_says() -> None:
    # runtime/errors.py draws ReferenceMisuseError under DefinitionError, so
    # ``except DefinitionError`` around create_workflow catches every definition mistake.
    with pytest.raises(DefinitionError):
        create_workflow("tree", lambda input: bool(input))


def test_plain_python_on_the_input_reference_raises_too() -> None:
    with pytest.raises(ReferenceMisuseError, match="workflow input"):
        create_workflow("input-misuse", lambda input: input["total"] + 1)


def test_field_references_are_references_not_values() -> None:
    captured: list[Any] = []

    def flow(input: Any) -> None:
        captured.append(input["order"].items[0])

    create_workflow("fields", flow)

    assert repr(captured[0]) == "<Ref the workflow input['order']['items'][0]>"


# -- parallelize -----------------------------------------------------------------


def test_parallelize_puts_the_steps_in_one_stage_and_returns_their_references() -> None:
    a, b, after = _step("a"), _step("b"), _step("after")
    returned: list[Any] = []

    def flow(input: Any) -> None:
        refs = parallelize(a(input), b(input))
        returned.extend(refs)
        after({"a": refs[0], "b": refs[1]})

    workflow = create_workflow("par", flow)

    assert _stage_sizes(workflow) == [2, 1]
    assert [node.key for node in workflow.graph.stages[0]] == ["a", "b"]
    assert [repr(ref) for ref in returned] == ["<Ref the output of 'a'>", "<Ref the output of 'b'>"]


def test_parallelize_of_one_step_raises() -> None:
    a = _step("a")
    with pytest.raises(DefinitionError, match="at least two"):
        create_workflow("par-one", lambda input: parallelize(a(input)))


def test_parallelize_of_the_input_raises() -> None:
    a = _step("a")
    with pytest.raises(DefinitionError, match="results of step calls"):
        create_workflow("par-input", lambda input: parallelize(a(input), input))


def test_parallelize_of_plain_values_raises() -> None:
    a = _step("a")
    with pytest.raises(DefinitionError, match="results of step calls"):
        create_workflow("par-plain", lambda input: parallelize(a(input), 42))


def test_parallelize_of_a_field_reference_raises() -> None:
    a, b = _step("a"), _step("b")
    with pytest.raises(DefinitionError, match="results of step calls"):
        create_workflow("par-field", lambda input: parallelize(a(input), b(input)["x"]))


def test_parallelize_of_steps_not_just_called_raises() -> None:
    a, b, c = _step("a"), _step("b"), _step("c")

    def flow(input: Any) -> None:
        first = a(input)
        b(input)
        third = c(input)
        parallelize(first, third)

    with pytest.raises(DefinitionError, match="directly wrap"):
        create_workflow("par-stale", flow)


def test_parallelize_of_a_step_using_its_sibling_raises() -> None:
    a, b = _step("a"), _step("b")

    def flow(input: Any) -> None:
        first = a(input)
        parallelize(first, b({"uses": first}))

    with pytest.raises(DefinitionError, match="same time"):
        create_workflow("par-dependent", flow)


def test_parallelize_of_a_transform_raises() -> None:
    a = _step("a")

    def flow(input: Any) -> None:
        parallelize(a(input), transform(input, lambda v: v))

    with pytest.raises(DefinitionError, match="parallelize"):
        create_workflow("par-transform", flow)


# -- references resolve at run time ------------------------------------------------


async def test_nested_field_paths_resolve_at_run_time(db_url: str) -> None:
    seen: list[Any] = []

    @create_step("look")
    async def look(value: Any) -> Any:
        seen.append(value)
        return {"deep": {"list": [10, 20, 30]}}

    def flow(input: Any) -> WorkflowResponse:
        out = look(
            {
                "b": input["a"].b,
                "first_item": input["items"][0]["sku"],
                "nested": [input.a["b"], {"c": input["a"]["c"]}],
            }
        )
        return WorkflowResponse({"second": out["deep"].list[1], "whole": out.deep})

    workflow = create_workflow("paths", flow)
    async with Runtime(database=db_url) as rt:
        with anyio.fail_after(5):
            result = await workflow(rt.container).run(
                input={"a": {"b": 5, "c": "see"}, "items": [{"sku": "k1"}, {"sku": "k2"}]}
            )

    assert seen == [{"b": 5, "first_item": "k1", "nested": [5, {"c": "see"}]}]
    assert result.result == {"second": 20, "whole": {"list": [10, 20, 30]}}


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
