"""A run of a workflow no worker knows waits with a clear error on it (and is not run)."""

from __future__ import annotations

from runtime import Client, RunStatus, Runtime, create_step, create_workflow


async def test_a_run_of_an_unknown_workflow_says_so_on_the_run(db_url: str) -> None:
    client = Client(db_url)
    handle = await client.run("send-invoice", {"id": 1})  # no service knows this name
    await client.close()

    @create_step("noop")
    async def noop() -> None:
        return None

    other = create_workflow("something-else", lambda: noop())
    async with Runtime(database=db_url, workflows=[other]) as rt:
        record = await rt.workflows.get_run(handle.run_id)

    assert record.status is RunStatus.PENDING
    assert record.owner_id is None
    assert record.error is not None
    assert record.error.type == "UnknownWorkflowError"
    assert "send-invoice" in record.error.message
    assert "waits for this code" in record.error.message
