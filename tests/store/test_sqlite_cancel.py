"""The SQLite store's writes under asyncio's own cancellation, and a BEGIN that fails.

anyio's shields do not stop ``task.cancel()`` (what ``asyncio.timeout`` and a web
framework cancelling a request do), so these cancel tasks the asyncio way. A hang
here fails the test (``within``) rather than blocking the suite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from runtime import StoreError
from runtime.store import sqlite_batch
from runtime.store.sqlite import SqliteStore
from tests.helpers.records import new_run

pytestmark = pytest.mark.anyio

T = TypeVar("T")
WRITERS = 20


async def within(coro: Coroutine[Any, Any, T], seconds: float = 10) -> T:
    """Await ``coro``, failing the test if it has not finished after ``seconds``.

    ``asyncio.wait`` neither cancels nor waits on anything but the task, so a write
    path stuck behind a shield cannot keep the test from failing.
    """
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        pytest.fail(f"hung: not finished after {seconds} s")
    return task.result()


async def keys(store: SqliteStore) -> set[str]:
    return {run.idempotency_key or "" for run in (await store.list_runs(limit=1000)).runs}


@pytest.fixture(autouse=True)
def every_write_takes_a_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fast write yields first, so writers meet in one gathered transaction."""
    monkeypatch.setattr(sqlite_batch, "TURN_EVERY", 0.0)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "queued"])
@pytest.mark.parametrize("victim", [0, WRITERS - 1], ids=["leader", "follower"])
async def test_a_writer_cancelled_by_asyncio_still_ends_its_transaction(
    db_path: Path, fast: bool, victim: int
) -> None:
    """Bug: the writer leading a gathered fast transaction, cancelled by ``task.cancel()``
    while it gave the loop its turn, left the batch uncommitted: it and every writer that
    had joined it waited forever, and so did every later write. Now the transaction is
    committed whatever happens to its leader, and a cancelled writer sees its
    cancellation only after its write was committed."""
    store = await SqliteStore.open(str(db_path), fast=fast)
    try:
        await store.create_run(new_run(workflow="wf", key="warm-up"))
        tasks = [
            asyncio.ensure_future(store.create_run(new_run(workflow="wf", key=f"k{i}")))
            for i in range(WRITERS)
        ]
        await anyio.lowlevel.checkpoint()  # each writer has joined the transaction and waits
        tasks[victim].cancel()
        await within(asyncio.wait(tasks))
        assert tasks[victim].cancelled()
        assert all(t.result()[1] for i, t in enumerate(tasks) if i != victim)
        # A write that was called was committed, the cancelled one included.
        assert await keys(store) == {"warm-up", *(f"k{i}" for i in range(WRITERS))}
        # And the store still writes.
        _, created = await within(store.create_run(new_run(workflow="wf", key="after")))
        assert created
    finally:
        await store.close()


@pytest.mark.parametrize("victim", [0, WRITERS - 1], ids=["leader", "follower"])
async def test_a_cancelled_writer_whose_transaction_finds_the_lock_taken_still_ends_it(
    db_path: Path, victim: int
) -> None:
    """The gathered transaction's BEGIN finds the lock held by another process, so it goes
    to the thread, led by the first writer: cancelled or not, that writer leads it to
    its commit once the lock is free, and the writers in it all complete."""
    store = await SqliteStore.open(str(db_path))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        await store.create_run(new_run(workflow="wf", key="warm-up"))
        tasks = [
            asyncio.ensure_future(store.create_run(new_run(workflow="wf", key=f"k{i}")))
            for i in range(WRITERS)
        ]
        await anyio.lowlevel.checkpoint()  # each writer has joined the transaction and waits
        blocker.execute("BEGIN IMMEDIATE")  # another process takes the lock
        tasks[victim].cancel()
        with anyio.fail_after(10):
            while not store._flushing:  # the batch went to the thread, which waits
                await anyio.lowlevel.checkpoint()
        blocker.execute("COMMIT")
        await within(asyncio.wait(tasks))
        assert tasks[victim].cancelled()
        assert all(t.result()[1] for i, t in enumerate(tasks) if i != victim)
        assert store.fast_commits == 1  # the warm-up: the batch was committed on the thread
        assert await keys(store) == {"warm-up", *(f"k{i}" for i in range(WRITERS))}
        _, created = await within(store.create_run(new_run(workflow="wf", key="after")))
        assert created
    finally:
        blocker.close()
        await store.close()


async def test_writers_under_asyncio_timeout_lose_nothing_and_leave_the_store_working(
    db_path: Path,
) -> None:
    """A loop of writes under ``asyncio.timeout`` in several tasks (what a web framework
    with request timeouts does): every write called was committed, and the store goes
    on writing afterwards."""
    store = await SqliteStore.open(str(db_path))
    called: list[str] = []

    async def writer(name: str, deadline: float) -> None:
        try:
            async with asyncio.timeout(deadline):
                for i in range(100_000):
                    called.append(f"{name}-{i}")
                    await store.create_run(new_run(workflow="wf", key=f"{name}-{i}"))
        except TimeoutError:
            pass

    try:
        writers = [
            asyncio.ensure_future(writer(n, d))
            for n, d in zip("abc", (0.01, 0.02, 0.03), strict=True)
        ]
        await within(asyncio.wait(writers), seconds=30)
        assert await keys(store) == set(called)
        _, created = await within(store.create_run(new_run(workflow="wf", key="after")))
        assert created
    finally:
        await store.close()


class _BrokenBegin:
    """A connection whose BEGIN fails as a damaged file does (not a busy lock)."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("BEGIN"):
            raise sqlite3.DatabaseError("file is not a database")
        return self.real.execute(sql, *args)

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("writers", [1, WRITERS])
async def test_a_begin_that_fails_with_a_database_error_fails_every_write_in_it(
    db_path: Path, writers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: a ``DatabaseError`` at BEGIN (anything but a busy lock's ``OperationalError``)
    escaped the writer leading the transaction and left the writers in it waiting
    forever. Now each of them gets a StoreError naming the file."""
    store = await SqliteStore.open(str(db_path))
    try:
        await store.create_run(new_run(workflow="wf", key="warm-up"))
        real = store._fast
        assert real is not None
        store._fast = _BrokenBegin(real)  # type: ignore[assignment]
        if writers == 1:
            # A task writing alone within its turn (the one that wrote the warm-up): its
            # write is committed at once, without gathering.
            monkeypatch.setattr(sqlite_batch, "TURN_EVERY", 60.0)
            with pytest.raises(StoreError) as caught:
                await store.create_run(new_run(workflow="wf", key="k0"))
            errors: list[BaseException | None] = [caught.value]
        else:
            tasks = [
                asyncio.ensure_future(store.create_run(new_run(workflow="wf", key=f"k{i}")))
                for i in range(writers)
            ]
            await within(asyncio.wait(tasks))
            errors = [task.exception() for task in tasks]
        for error in errors:
            assert isinstance(error, StoreError)
            assert str(db_path) in str(error) and "file is not a database" in str(error)
        store._fast = real
        assert await keys(store) == {"warm-up"}
        _, created = await within(store.create_run(new_run(workflow="wf", key="after")))
        assert created
    finally:
        await store.close()
