"""The codec's limits: JSON nested deeper than MAX_DEPTH is refused with a clear error
everywhere a value is stored, and a step that returns one fails (the engine goes on)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from runtime import (
    RunStatus,
    Runtime,
    SerializationError,
    StepResponse,
    WorkflowContext,
    create_step,
    create_workflow,
    workflow,
)
from runtime.codec import MAX_DEPTH, dumps, parse


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 5_000, 50_000])
def test_too_deep_is_a_serialization_error(depth: int) -> None:
    # Failed before: RecursionError (past ~1000 levels), or stored text that pydantic
    # (about 200 levels) could not read back.
    with pytest.raises(
        SerializationError,
        match=f"the output cannot be stored: it is nested more than {MAX_DEPTH} levels deep",
    ):
        dumps(nested(depth), "the output")
    text = "[" * depth + "]" * depth
    with pytest.raises(SerializationError, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse(text, "--data")


def test_the_limit_itself_round_trips_and_brackets_in_strings_do_not_count() -> None:
    value = nested(MAX_DEPTH, leaf="[[{{" * 100)
    assert parse(dumps(value, "x"), "x") == value
    many = [[i] for i in range(1_000)]  # many brackets, shallow
    assert parse(dumps(many, "x"), "x") == many
    escaped = ['\\"[' * 200]
    assert parse(dumps(escaped, "x"), "x") == escaped


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("NaN", "NaN is not JSON"),
        ("[Infinity]", "Infinity is not JSON"),
        ("1e999", "1e999 is too large for a float"),
        ("1" * 4301, "Exceeds the limit (4300 digits)"),
        ("{", "not valid JSON"),
    ],
)
def test_parse_refuses_what_dumps_would_refuse(text: str, needle: str) -> None:
    with pytest.raises(SerializationError, match=r"^--input is not valid JSON: ") as caught:
        parse(text, "--input")
    assert needle in str(caught.value)


async def test_a_step_output_too_deep_fails_the_step_not_the_engine(db_url: str) -> None:
    # Failed before: the RecursionError (or pydantic's refusal on read) escaped the engine.
    @create_step("deep")
    async def deep() -> StepResponse:
        return StepResponse(nested(2_000))

    @create_step("after")
    async def after() -> str:
        return "ran"

    composed = create_workflow("composed-deep", lambda: [deep(), after()])

    @workflow
    async def durable_deep(ctx: WorkflowContext[Any]) -> Any:
        return await ctx.step("deep", lambda: nested(MAX_DEPTH + 1))

    @workflow
    async def deep_result(ctx: WorkflowContext[Any]) -> Any:
        return nested(300)

    @workflow
    async def fine(ctx: WorkflowContext[Any]) -> Any:
        return await ctx.step("ok", lambda: nested(MAX_DEPTH))

    async with Runtime(
        db_url, workflows=[composed, durable_deep, deep_result, fine], background=False
    ) as rt:
        for definition, step in ((composed, "deep"), (durable_deep, "deep"), (deep_result, None)):
            result = await definition(rt.container).run(throw_on_error=False)
            assert result.status is RunStatus.FAILED, definition.name
            error = result.errors[0]
            assert (error.type, error.step) == ("SerializationError", step)
            assert f"nested more than {MAX_DEPTH} levels deep" in error.message
            stored = await rt.workflows.get_run(result.run_id)
            assert stored.status is RunStatus.FAILED
        ok = await fine(rt.container).run()
        assert json.dumps(ok.result) == json.dumps(nested(MAX_DEPTH))


class Note(BaseModel):
    text: str


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",
        "ok \udfff",
        {"\ud83d": 1},  # half of a pair, as a key
        ["a", {"b": ["\udbff"]}],
        "\ud83d\ude00",  # a pair of surrogates in Python is still not a character
        Note(text="\ud800"),
    ],
)
def test_a_lone_surrogate_is_a_serialization_error(value: Any) -> None:
    # Failed before: stored escaped, then a 500 when an answer or jsonb encoded it as UTF-8.
    with pytest.raises(SerializationError, match=r"^the data cannot be stored: .*surrogate"):
        dumps(value, "the data")


def test_characters_past_the_bmp_and_backslashes_still_round_trip() -> None:
    value = {"\N{GRINNING FACE}": ["\\ud800 is six characters", "\U0010ffff"]}
    assert parse(dumps(value, "x"), "x") == value
    # JSON's escapes of a pair decode to one character, which is stored as it was.
    assert dumps(parse('"\\ud83d\\ude00"', "x"), "x") == '"\\ud83d\\ude00"'
    with pytest.raises(SerializationError, match="surrogate"):
        dumps(parse('"\\ud83d"', "--data"), "--data")


async def test_a_step_output_with_a_lone_surrogate_fails_the_step(db_url: str) -> None:
    @workflow
    async def broken_text(ctx: WorkflowContext[Any]) -> Any:
        return await ctx.step("read", lambda: {"name": "\udcff"})

    async with Runtime(db_url, workflows=[broken_text], background=False) as rt:
        result = await broken_text(rt.container).run(throw_on_error=False)
        assert result.status is RunStatus.FAILED
        assert (result.errors[0].type, result.errors[0].step) == ("SerializationError", "read")
        assert "lone surrogate" in result.errors[0].message
