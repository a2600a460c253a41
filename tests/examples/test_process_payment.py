"""Process payment (seed 003): the input schema refuses a bad start, the output one a bad end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime import Container, InputValidationError, RunFailed, RunStatus, Runtime
from tests.examples.sonamu import runs_of, sonamu_runtime, steps_of
from tests.helpers.waiting import WAIT


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container) as runtime:
        yield runtime


async def test_a_payment_creates_an_order(rt: Runtime, container: Container) -> None:
    handle = await rt.workflows.run("process_payment", {"user_id": 7, "amount": 19.99})

    assert await handle.result(timeout=WAIT) == {"order_id": 1, "status": "success"}
    assert container.resolve("payments").orders == [
        {"id": 1, "user_id": 7, "amount": 19.99, "status": "success"}
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"user_id": 7, "amount": -5},  # not positive
        {"user_id": 7, "amount": 0},
        {"user_id": "seven", "amount": 10},  # not a number
        {"amount": 10},  # missing
        None,
    ],
)
async def test_a_bad_input_is_refused_at_start_and_creates_no_run(
    rt: Runtime, container: Container, bad: Any
) -> None:
    with pytest.raises(InputValidationError) as caught:
        await rt.workflows.run("process_payment", bad)

    assert caught.value.workflow == "process_payment"
    assert await runs_of(rt, "process_payment") == []
    assert container.resolve("payments").orders == []


async def test_a_bad_output_fails_the_run(rt: Runtime, container: Container) -> None:
    # The provider answers with a status the output schema does not allow.
    container.resolve("payments").outcome = "pending"

    handle = await rt.workflows.run("process_payment", {"user_id": 7, "amount": 5})

    with pytest.raises(RunFailed) as caught:
        await handle.result(timeout=WAIT)
    assert caught.value.status == "failed"
    run = await rt.workflows.get_run(handle.run_id)
    assert run.status is RunStatus.FAILED
    assert run.output is None
    assert run.error is not None
    assert "bad output" in run.error.message
    assert "status" in run.error.message
    # The step itself worked; it is the result that was refused.
    assert steps_of(run) == [("create_order", "completed", 1)]
