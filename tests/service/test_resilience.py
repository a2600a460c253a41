"""The service survives a database that refuses it for a moment (e.g. locked too long)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime import Runtime, create_step, create_workflow
from runtime.errors import StoreError
from runtime.sdk.specs import Subscriber, SubscriberArgs, SubscriberConfig


def refuse_once(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[str]:
    """Make ``target.name`` raise StoreError on its first call; returns the calls seen."""
    calls: list[str] = []
    real = getattr(target, name)

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        if len(calls) == 1:
            raise StoreError("SQLite: database is locked")
        return await real(*args, **kwargs)

    monkeypatch.setattr(target, name, flaky)
    return calls


async def test_a_refused_claim_does_not_stop_the_dispatcher(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = anyio.Event()

    async def handler(args: SubscriberArgs) -> None:
        got.set()

    subscriber = Subscriber("listener", handler, SubscriberConfig("thing.happened"))
    async with Runtime(database=db_url, subscribers=[subscriber], interval=0.05) as rt:
        calls = refuse_once(monkeypatch, rt.store, "claim_deliveries")
        await rt.emit("thing.happened")
        with anyio.fail_after(5):
            await got.wait()
    assert len(calls) >= 2  # refused once, then tried again and delivered


async def test_a_refused_scan_does_not_stop_the_worker(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    @create_step("work")
    async def work() -> str:
        return "done"

    workflow = create_workflow("resilient", lambda: work())
    async with Runtime(database=db_url, workflows=[workflow], interval=0.05) as rt:
        calls = refuse_once(monkeypatch, rt.store, "recoverable_runs")
        handle = await rt.workflows.run("resilient")
        assert await handle.result(timeout=5) == "done"
    assert len(calls) >= 2
