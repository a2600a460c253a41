"""Workflow versions: the newest by default, a run keeps its version, missing code waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from runtime import Client, DurableWorkflow, RunStatus, Runtime, WorkflowContext, workflow
from runtime.engine.worker import DEFER_CAP
from runtime.testing import ManualClock
from tests.helpers.waiting import wait_status, wait_until


def greet(version: str | None, calls: list[str], *, nap: float | None = None) -> DurableWorkflow:
    """A ``greet`` workflow whose result names the code that ran it and the run's version."""

    async def hello(code: str) -> str:
        calls.append(f"hello {code}")
        return f"hello from {code}"

    @workflow(name="greet", version=version)
    async def flow(ctx: WorkflowContext[Any]) -> dict[str, Any]:
        said = await ctx.step("hello", hello, str(version))
        if nap is not None:
            await ctx.sleep("nap", nap)
            said = await ctx.step("again", hello, str(version))
        return {"code": str(version), "run_version": ctx.version, "said": said}

    return flow


async def test_two_versions_side_by_side_and_the_newest_by_default(db_url: str) -> None:
    calls: list[str] = []
    flows = [greet(v, calls) for v in (None, "v1", "v2", "v10")]
    async with Runtime(database=db_url, workflows=flows) as rt:
        newest = await rt.workflows.run("greet")
        assert await newest.result(timeout=5) == {
            "code": "v10",
            "run_version": "v10",
            "said": "hello from v10",
        }
        older = await rt.workflows.run("greet", version="v2")
        assert (await older.result(timeout=5))["code"] == "v2"
        first = await rt.workflows.run("greet", version="v1")
        assert (await first.result(timeout=5))["code"] == "v1"
        versions = {r.id: r.version for r in (await rt.workflows.list_runs(workflow="greet")).runs}
        assert versions == {newest.run_id: "v10", older.run_id: "v2", first.run_id: "v1"}
        assert calls == ["hello v10", "hello v2", "hello v1"]

        with anyio.fail_after(5):
            inline = await flows[2](rt.container).run()
        assert inline.result["code"] == "v2"


async def test_a_run_keeps_its_version_across_a_restart(db_path: Path) -> None:
    db_url = f"sqlite:///{db_path}"
    clock = ManualClock()
    calls: list[str] = []
    async with Runtime(database=db_url, workflows=[greet("v1", calls, nap=60)], clock=clock) as rt:
        handle = await rt.workflows.run("greet")
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
    assert calls == ["hello v1"]

    flows = [greet("v1", calls, nap=60), greet("v2", calls, nap=60)]
    async with Runtime(database=db_url, workflows=flows, clock=clock) as rt:
        clock.advance(60)
        rt.worker.poke()
        assert await rt.workflows.wait(handle.run_id, timeout=5)
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.COMPLETED
        assert record.version == "v1"
        assert record.output == {"code": "v1", "run_version": "v1", "said": "hello from v1"}
        assert calls == ["hello v1", "hello v1"]

        fresh = await rt.workflows.run("greet")
        await wait_status(rt, fresh.run_id, RunStatus.SLEEPING)
        clock.advance(60)
        rt.worker.poke()
        assert (await fresh.result(timeout=5))["code"] == "v2"


async def test_a_run_whose_version_is_missing_waits_pending_then_completes(
    db_path: Path,
) -> None:
    db_url = f"sqlite:///{db_path}"
    clock = ManualClock()
    calls: list[str] = []
    both = [greet("v1", calls, nap=60), greet("v2", calls, nap=60)]
    async with Runtime(database=db_url, workflows=both, clock=clock) as rt:
        handle = await rt.workflows.run("greet")
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
    assert calls == ["hello v2"]

    async with Runtime(database=db_url, workflows=[greet("v1", calls, nap=60)], clock=clock) as rt:
        clock.advance(60)
        rt.worker.poke()

        async def explained() -> bool:
            record = await rt.workflows.get_run(handle.run_id, steps=False)
            return record.error is not None

        await wait_until(explained)
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.PENDING
        assert record.version == "v2"
        assert record.owner_id is None
        assert record.error is not None
        assert "greet" in record.error.message and "v2" in record.error.message
        assert [(s.name, s.status.value) for s in record.steps] == [
            ("hello", "completed"),
            ("nap", "running"),
        ]

        clock.advance(DEFER_CAP)  # retried with backoff: still no code for v2
        rt.worker.poke()
        await anyio.sleep(0.1)
        record = await rt.workflows.get_run(handle.run_id, steps=False)
        assert record.status is RunStatus.PENDING
        assert record.version == "v2"
        assert calls == ["hello v2"]
        assert rt.worker.in_flight == 0

    async with Runtime(database=db_url, workflows=both, clock=clock) as rt:
        clock.advance(DEFER_CAP)
        rt.worker.poke()
        await rt.workflows.wait(handle.run_id, timeout=5)
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.COMPLETED
        assert record.error is None
        assert record.output == {"code": "v2", "run_version": "v2", "said": "hello from v2"}
        assert calls == ["hello v2", "hello v2"]


async def test_a_client_run_by_name_is_pinned_to_the_newest_version_when_first_driven(
    db_url: str,
) -> None:
    calls: list[str] = []
    async with Client(db_url) as client:
        by_name = await client.run("greet", {"who": "Ada"})
        pinned = await client.run("greet", version="v1")
        queued = await client.get_run(by_name.run_id)
        assert (queued.status, queued.version) == (RunStatus.PENDING, None)

        flows = [greet(v, calls) for v in ("v1", "v2", "v10")]
        async with Runtime(database=db_url, workflows=flows):
            assert (await by_name.result(timeout=5))["code"] == "v10"
            assert (await pinned.result(timeout=5))["code"] == "v1"
        record = await client.get_run(by_name.run_id)
        assert (record.version, record.kind) == ("v10", "durable")
        assert record.output == {"code": "v10", "run_version": "v10", "said": "hello from v10"}
        assert (await client.get_run(pinned.run_id)).version == "v1"
        assert sorted(calls) == ["hello v1", "hello v10"]
