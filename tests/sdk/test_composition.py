"""Definition-time behaviour of composition workflows: the graph, references, misuse errors."""

from __future__ import annotations

from collections.abc import Callable
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
