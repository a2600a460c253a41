"""DESIGN 2.1's table through ``Client``, ``SyncClient`` and the CLI (exit codes)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from runtime import (
    Client,
    InvalidTransitionError,
    RunNotFoundError,
    RunStatus,
    Runtime,
    SyncClient,
)
from tests.helpers.definitions import (
    LATER,
    Probe,
    abc,
)
from tests.helpers.waiting import wait_ended

ALIGNED = timedelta(seconds=1)
"""How far two processes' clocks may disagree: on PostgreSQL each is aligned with the
server's, within its round trips to it."""


# -- the same table through Client, SyncClient and the CLI ----------------------------------


async def test_client_applies_the_same_table(db_url: str) -> None:
    probe = Probe()
    flow = abc("durable", probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt, Client(db_url) as client:
        handle = await client.run("abc", delay=LATER)
        assert (await client.pause(handle.run_id)).status is RunStatus.PAUSED
        assert (await client.pause(handle.run_id)).status is RunStatus.PAUSED
        record = await client.resume(handle.run_id)
        assert record.status is RunStatus.PENDING
        assert record.available_at <= rt.clock.now() + ALIGNED
        assert await handle.result(timeout=5) == ["a", "b", "c"]
        with pytest.raises(InvalidTransitionError, match=handle.run_id):
            await client.pause(handle.run_id)
        with pytest.raises(InvalidTransitionError, match="completed"):
            await client.cancel(handle.run_id)
        with pytest.raises(InvalidTransitionError, match="completed"):
            await client.retry(handle.run_id)
        with pytest.raises(RunNotFoundError):
            await client.resume("run_missing")

        probe.hold("a")
        running = await client.run("abc")
        with anyio.fail_after(5):
            await probe.entered("a", times=2)
        assert (await client.cancel(running.run_id)).control == "cancel"
        probe.release("a")
        record = await wait_ended(rt, running.run_id)
        assert record.status is RunStatus.CANCELED
        assert probe.calls[-2:] == ["a", "undo a"]


async def test_sync_client_applies_the_same_table(db_url: str) -> None:
    probe = Probe()
    probe.fail("c")
    flow = abc("composition", probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow)
        assert (await wait_ended(rt, handle.run_id)).status is RunStatus.FAILED

        def manage() -> list[Any]:
            with SyncClient(db_url) as client:
                outcomes: list[Any] = []
                for action in (client.pause, client.resume, client.cancel):
                    try:
                        action(handle.run_id)
                    except InvalidTransitionError as exc:
                        outcomes.append(str(exc))
                outcomes.append(client.retry(handle.run_id).status)
                with pytest.raises(RunNotFoundError):
                    client.pause("run_missing")
                return outcomes

        outcomes = await anyio.to_thread.run_sync(manage)
        assert len(outcomes) == 4
        assert all(handle.run_id in o and "failed" in o for o in outcomes[:3])
        assert outcomes[3] in (RunStatus.PENDING, RunStatus.RUNNING)
        assert await handle.result(timeout=5) == ["a", "b", "c"]


def runtime_cli(cwd: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "--database", db_url, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_applies_the_same_table_with_exit_codes(db_url: str, tmp_path: Path) -> None:
    probe = Probe()
    flow = abc("durable", probe)

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await anyio.to_thread.run_sync(lambda: runtime_cli(tmp_path, db_url, *args))

    async with Runtime(database=db_url, workflows=[flow]) as rt:
        queued = await rt.workflows.run(flow, delay=LATER)
        done = await rt.workflows.run(flow)
        assert await done.result(timeout=5) == ["a", "b", "c"]

        paused = await cli("runs", "pause", queued.run_id)
        assert (paused.returncode, paused.stdout.strip()) == (0, f"{queued.run_id}: paused")
        assert (await cli("runs", "pause", queued.run_id)).returncode == 0
        assert (await rt.workflows.get_run(queued.run_id)).status is RunStatus.PAUSED

        refused = await cli("runs", "pause", done.run_id)
        assert refused.returncode == 1
        assert done.run_id in refused.stderr and "completed" in refused.stderr
        assert (await cli("runs", "retry", queued.run_id)).returncode == 1

        unknown = await cli("runs", "cancel", "run_missing")
        assert unknown.returncode == 3
        assert "run_missing" in unknown.stderr

        resumed = await cli("runs", "resume", queued.run_id)
        assert resumed.returncode == 0
        assert await queued.result(timeout=5) == ["a", "b", "c"]
