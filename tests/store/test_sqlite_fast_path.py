"""The SQLite store's fast path: commits on the loop's thread when the lock is free."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from runtime import LeaseLostError, RunStatus, StepStatus
from runtime.ids import new_id
from runtime.store import open_store
from runtime.store.changes import Complete
from runtime.store.records import NewRun, StepWrite
from runtime.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def new_run(key: str, owner: str | None = None) -> NewRun:
    return NewRun(
        id=new_id("run"),
        workflow="wf",
        version=None,
        kind="composition",
        idempotency_key=key,
        status=RunStatus.RUNNING if owner else RunStatus.PENDING,
        input="null",
        owner_id=owner,
        parent_run_id=None,
        available_at=T0,
        created_at=T0,
    )


async def test_a_free_database_is_written_on_the_fast_path_and_durably(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        record, created = await store.create_run(new_run("a"))
        assert created
        assert (store.commits, store.fast_commits) == (1, 1)
        # Committed: another connection (another process, as far as SQLite can tell) sees it.
        with sqlite3.connect(db_path) as other:
            row = other.execute("SELECT idempotency_key FROM runs WHERE id = ?", (record.id,))
            assert row.fetchone() == ("a",)
    finally:
        await store.close()


async def test_a_write_while_another_connection_holds_the_lock_waits_its_turn(
    db_path: Path,
) -> None:
    store = await SqliteStore.open(str(db_path))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    done = anyio.Event()
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process is writing

        async def write() -> None:
            await store.create_run(new_run("b"))
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await anyio.sleep(0.1)
            assert not done.is_set()  # queued behind the lock, not failed, not skipped
            blocker.execute("COMMIT")
            with anyio.fail_after(5):
                await done.wait()
        assert store.fast_commits == 0
        assert store.commits == 1
        assert (await store.find_run("wf", "b")) is not None
    finally:
        blocker.close()
        await store.close()


async def test_a_refused_fast_write_leaves_nothing_behind(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        owned, _ = await store.create_run(new_run("owned", owner="wrk_a"))
        with pytest.raises(LeaseLostError):
            await store.checkpoint(
                owned.id,
                "wrk_thief",
                [StepWrite(seq=1, name="stolen", status=StepStatus.COMPLETED, attempts=1)],
                Complete(output='"stolen"', ended_at=T0),
                T0,
            )
        run = await store.get_run(owned.id)
        assert (run.status, run.steps) == (RunStatus.RUNNING, [])
        # The fast connection is usable again: no transaction was left open.
        await store.create_run(new_run("after"))
        assert (await store.find_run("wf", "after")) is not None
    finally:
        await store.close()


async def test_the_fast_connection_never_waits_for_the_lock_nor_checkpoints(
    db_path: Path,
) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        fast = store._fast
        assert fast is not None
        assert fast.execute("PRAGMA busy_timeout").fetchone() == (0,)
        assert fast.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        assert fast.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await store.close()


@pytest.mark.parametrize("query", ["?synchronous=full", "?fast_path=off"])
async def test_the_fast_path_is_off_with_fsync_per_commit_or_when_asked(
    db_path: Path, query: str
) -> None:
    store = await open_store(f"sqlite:///{db_path}{query}")
    try:
        await store.create_run(new_run("c"))
        assert store.fast_commits == 0  # type: ignore[attr-defined]
        assert store.commits == 1  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_the_change_token_moves_for_other_processes_not_for_our_own_commits(
    db_path: Path,
) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        token = await store.change_token()
        await store.create_run(new_run("ours"))  # fast path
        await store.heartbeat("wrk_nobody", T0)  # ours too
        assert await store.change_token() == token
        with sqlite3.connect(db_path) as other:  # another process commits
            other.execute(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) "
                "VALUES ('w', 'h', 1, 'x', 'x')"
            )
        assert await store.change_token() != token
    finally:
        await store.close()
