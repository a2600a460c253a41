"""The data pipeline (seed 003): a failed transform is retried without collecting again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime import Container, RunFailed, RunStatus, Runtime
from tests.examples.faults import count_calls, fail_on, heal
from tests.examples.sonamu import sonamu_runtime, steps_of
from tests.helpers.waiting import WAIT

TIDY = {
    1: {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"},
    2: {"id": 2, "name": "Grace Hopper", "email": "grace@example.com"},
}


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container) as runtime:
        yield runtime


async def test_the_three_stages_run_once_each(rt: Runtime, container: Container) -> None:
    data = container.resolve("user_data")
    calls = count_calls(data)

    handle = await rt.workflows.run("process_user_data")

    assert await handle.result(timeout=WAIT) == {"processed": 2}
    assert data.table == TIDY
    assert calls == {"fetch_raw_data": 1, "transform_data": 1, "save_to_database": 1}


async def test_a_failed_transform_is_retried_from_the_transform(
    rt: Runtime, container: Container
) -> None:
    data = container.resolve("user_data")
    calls = count_calls(data)
    fail_on(data, "transform_data")  # the transform is broken until healed

    handle = await rt.workflows.run("process_user_data")
    with pytest.raises(RunFailed):
        await handle.result(timeout=WAIT)

    failed = await rt.workflows.get_run(handle.run_id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert (failed.error.step, failed.error.type) == ("transform", "ServiceError")
    assert steps_of(failed) == [("collect_data", "completed", 1), ("transform", "failed", 1)]
    assert data.table == {}

    heal(data)  # the fix is deployed
    await rt.workflows.retry(handle.run_id)

    assert await handle.result(timeout=WAIT) == {"processed": 2}
    run = await rt.workflows.get_run(handle.run_id)
    assert run.status is RunStatus.COMPLETED
    assert [(name, status) for name, status, _ in steps_of(run)] == [
        ("collect_data", "completed"),
        ("transform", "completed"),
        ("save", "completed"),
    ]
    assert data.table == TIDY
    # The external API was called once in all; the transform twice (failed, then fixed).
    assert calls == {"fetch_raw_data": 1, "transform_data": 2, "save_to_database": 1}
