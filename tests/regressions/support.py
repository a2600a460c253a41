"""Bounded polling helpers shared by the regression tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from runtime import RunRecord, RunStatus, Runtime


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 2.5) -> None:
    """Poll ``check`` every few milliseconds until it holds; fail after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - polls the store, bounded by fail_after
            await anyio.sleep(0.01)


async def wait_status(
    rt: Runtime, run_id: str, *statuses: RunStatus, timeout: float = 2.5
) -> RunRecord:
    """Wait until the run is in one of ``statuses``; return its record (with steps)."""
    seen: list[Any] = []

    async def reached() -> bool:
        seen[:] = [await rt.workflows.get_run(run_id)]
        return seen[0].status in statuses

    try:
        await wait_until(reached, timeout)
    except TimeoutError:
        last = seen[0] if seen else None
        state = (last.status.value, last.owner_id, last.error) if last else None
        wanted = [s.value for s in statuses]
        raise AssertionError(
            f"run {run_id} not in {wanted} after {timeout}s; (status, owner, error): {state}"
        ) from None
    return seen[0]
