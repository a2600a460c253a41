"""Two Runtimes in one process on one database never take each other for dead."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime import RunStatus, Runtime, WorkflowResponse, create_step, create_workflow
from runtime.engine.leases import dead_local_workers
from tests.helpers.waiting import wait_status

pytestmark = pytest.mark.anyio


def slow_workflow(calls: list[int], started: anyio.Event) -> Any:
    @create_step("slow")
    async def slow(inp: Any, ctx: Any) -> dict[str, bool]:
        calls.append(ctx.attempt)
        started.set()
        await anyio.sleep(0.8)
        return {"ok": True}

    return create_workflow("two-rt", lambda i: WorkflowResponse(slow(i)))


async def test_runtimes_in_one_process_do_not_reap_each_other(db_url: str) -> None:
    """Bug: a worker took any other worker with its own pid for a dead earlier process, so
    a second Runtime in the same process removed the first one's worker row (releasing
    its runs) at start-up; now both stay registered and neither counts the other dead."""
    wf = slow_workflow([], anyio.Event())
    async with (
        Runtime(db_url, workflows=[wf], interval=0.1) as a,
        Runtime(db_url, workflows=[wf], interval=0.1) as b,
    ):
        await anyio.sleep(0.2)  # a few scans of both workers
        workers = await b.store.list_workers()
        assert {a.identity.id, b.identity.id} <= {w.id for w in workers}
        assert dead_local_workers(workers, a.identity) == []
        assert dead_local_workers(workers, b.identity) == []


async def test_second_runtime_does_not_rerun_the_first_ones_step(db_url: str) -> None:
    """Bug: a second Runtime in the same process released the first one's runs as "dead"
    and drove them again, running a step that was still running a second time; now the
    step runs once and the run completes."""
    calls: list[int] = []
    started = anyio.Event()
    wf = slow_workflow(calls, started)
    async with Runtime(db_url, workflows=[wf], interval=0.1) as a:
        handle = await a.workflows.run("two-rt", {})
        with anyio.fail_after(2):
            await started.wait()
        async with Runtime(db_url, workflows=[wf], interval=0.1) as b:
            record = await wait_status(
                b, handle.run_id, *[s for s in RunStatus if s.terminal], timeout=2.5
            )
            assert record.status is RunStatus.COMPLETED
            assert record.output == {"ok": True}
    assert calls == [1]
