"""SyncClient shared between threads: the first calls may race; one loop serves them all."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import runtime.client
from runtime import SyncClient
from tests.helpers.backends import opened


async def test_first_calls_from_many_threads_share_one_portal(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    real = runtime.client.LoopThread

    def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime.client, "LoopThread", counted)
    client = SyncClient(db_url)
    start = threading.Barrier(8)
    ids: list[str] = []
    errors: list[BaseException] = []

    def emit(i: int) -> None:
        start.wait()  # every thread makes its first call at once
        try:
            ids.append(client.emit("view.rendered", {"i": i}))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=emit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    portal = client._portal
    client.close()

    assert errors == []
    assert portal is not None
    assert len(started) == 1  # one event loop thread, however many threads raced
    assert len(set(ids)) == 8
    async with opened(db_url) as store:
        page = await store.list_events(name="view.rendered", limit=100)
    assert sorted(e.data["i"] for e in page.items) == list(range(8))
