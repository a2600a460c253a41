"""PostgreSQL restarted under load: the service keeps running, reconnects, and every run
finishes with no step that had finished running again.

A real restart of the test server (``pg_ctlcluster ... restart``, as root, which CI
is): its connections are cut as in a failover or a crash of the server.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from runtime import RunStatus, Runtime, StepContext, WorkflowResponse, create_step, create_workflow
from tests.helpers.postgres import fresh_schema
from tests.helpers.waiting import wait_until

RUNS = 40
STEPS = 6


def restart_command() -> list[str]:
    """The command that restarts the test server's cluster; skip (fail under CI) without one."""
    tool = shutil.which("pg_ctlcluster")
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if tool else []
    if not versions or os.geteuid() != 0:
        reason = "restarting PostgreSQL needs pg_ctlcluster and root"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    version = versions[-1].parent.name
    return [tool or "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]


async def test_a_restart_under_load_loses_nothing_and_repeats_no_finished_step() -> None:
    command = restart_command()
    ran: Counter[tuple[str, int]] = Counter()
    finished: set[tuple[str, int]] = set()

    def make_step(index: int) -> Any:
        async def body(value: int, ctx: StepContext) -> int:
            key = (ctx.run_id, index)
            # A step may run again only if its checkpoint never committed, so it must
            # not have been seen finished by a later step of its run.
            assert key not in finished, f"step {index} of {ctx.run_id} ran after it finished"
            # This step runs, so the ones before it were checkpointed: finished for good.
            finished.update((ctx.run_id, before) for before in range(index))
            ran[key] += 1
            await anyio.sleep(0.05)
            return value + 1

        return create_step(f"s{index}", body)

    steps = [make_step(i) for i in range(STEPS)]

    def build(input: Any) -> WorkflowResponse:
        value = input["start"]
        for each in steps:
            value = each(value)
        return WorkflowResponse(value)

    wf = create_workflow("restart-load", build)
    async with (
        fresh_schema() as url,
        Runtime(database=url, workflows=[wf], concurrency=20, interval=0.2) as rt,
    ):
        handles = [await rt.workflows.run("restart-load", {"start": 0}) for _ in range(RUNS)]
        await wait_until(lambda: sum(ran.values()) >= RUNS, timeout=30)
        with capture_logs() as logs:
            await anyio.run_process(command)

            async def all_ended() -> bool:
                records = [await rt.workflows.get_run(h.run_id, steps=False) for h in handles]
                return all(r.status.terminal for r in records)

            await wait_until(all_ended, timeout=90)
        records = [await rt.workflows.get_run(h.run_id, steps=False) for h in handles]
    assert [r.status for r in records] == [RunStatus.COMPLETED] * RUNS
    assert all(r.output == STEPS for r in records)
    # Every step ran; one that ran twice was cut before its checkpoint committed.
    assert len(ran) == RUNS * STEPS
    repeated = [key for key, count in ran.items() if count > 1]
    assert len(repeated) <= 20, repeated  # at most one per run in flight at the restart
    assert "database_unreachable" in [entry["event"] for entry in logs]
