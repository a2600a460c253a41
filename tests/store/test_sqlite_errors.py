"""Every failure below the store reaches its caller as one error of runtime's tree.

A closed store, a read-only file, a lock held past the busy timeout, a constraint,
a stored row that cannot be decoded: each is a ``StoreError`` subclass naming the
operation, the database file and the run, with the original exception as its
``__cause__``; never a raw ``sqlite3`` error or aiosqlite's ``ValueError``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime import (
    CorruptRecordError,
    DatabaseLockedError,
    DatabaseReplacedError,
    InvalidTransitionError,
    LeaseLostError,
    RunStatus,
    StoreArgumentError,
    StoreClosedError,
    StoreError,
    StoreOperationError,
)
from runtime.store.changes import PROGRESS
from runtime.store.pruning import PruneCutoffs
from runtime.store.records import NewEvent, SubscriberRow, WorkerRow
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_connection import on_thread
from runtime.store.sqlite_open import opened_file
from tests.store.test_sqlite import T0, new_run


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(str(db_path))
    try:
        yield opened
    finally:
        await opened.close()


def raw(db_path: Path, sql: str, *params: object) -> None:
    """Change the file behind the store's back, as damage or another program would."""
    with sqlite3.connect(db_path) as db:
        db.execute(sql, params)


@pytest.mark.parametrize("path", ["file", ":memory:"])
async def test_a_closed_store_raises_store_closed_error(db_path: Path, path: str) -> None:
    """Bug: every call on a closed store raised aiosqlite's ``ValueError: no active
    connection``, outside runtime's tree, and ``change_token`` answered as if open."""
    name = str(db_path) if path == "file" else ":memory:"
    store = await SqliteStore.open(name)
    run, _ = await store.create_run(new_run("k"))
    await store.close()
    calls: dict[str, tuple[Callable[[], Awaitable[object]], str | None]] = {
        "get_run": (lambda: store.get_run(run.id), run.id),
        "checkpoint": (lambda: store.checkpoint(run.id, "w", [], PROGRESS, T0), run.id),
        "list_workers": (store.list_workers, None),
        "heartbeat": (lambda: store.heartbeat("w", T0), None),
        "prune": (lambda: store.prune(PruneCutoffs(completed=T0)), None),
        "change_token": (store.change_token, None),
    }
    for operation, (call, run_id) in calls.items():
        with pytest.raises(StoreClosedError) as caught:
            await call()
        error = caught.value
        assert (error.operation, error.path, error.run_id) == (operation, name, run_id)
        about = f" (run {run_id})" if run_id else ""
        assert str(error) == f"{operation} on the database {name}{about}: the store is closed"
        if operation != "change_token":  # the only one that finds out before any I/O
            assert isinstance(error.__cause__, ValueError)
            assert not isinstance(error.__cause__, StoreError)
    await store.close()  # closing twice is harmless


async def test_a_read_only_database_refuses_a_write(store: SqliteStore, db_path: Path) -> None:
    """SQLite refuses the write (``SQLITE_READONLY``): a ``StoreOperationError``."""
    run, _ = await store.create_run(new_run("k"))
    assert store._fast is not None
    store._fast.execute("PRAGMA query_only = 1")
    await on_thread(store._conn, lambda db: db.execute("PRAGMA query_only = 1"))
    with pytest.raises(StoreOperationError) as caught:
        await store.transition(run.id, [RunStatus.PENDING], RunStatus.RUNNING, T0)
    error = caught.value
    assert type(error) is StoreOperationError
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert (error.operation, error.path, error.run_id) == ("transition", str(db_path), run.id)
    assert str(error).startswith(f"transition on the database {db_path} (run {run.id}): ")
    assert "readonly database" in str(error)
    assert (await store.get_run(run.id)).status is RunStatus.PENDING  # reads go on


async def test_a_lock_held_past_the_busy_timeout_is_database_locked_error(
    store: SqliteStore, db_path: Path
) -> None:
    """Another process holds the write lock longer than the (here tiny) busy timeout."""
    await on_thread(store._conn, lambda db: db.execute("PRAGMA busy_timeout = 20"))
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        planned = new_run("k")
        with anyio.fail_after(10), pytest.raises(DatabaseLockedError) as caught:
            await store.create_run(planned)
    finally:
        other.execute("ROLLBACK")
        other.close()
    error = caught.value
    assert isinstance(error, TimeoutError) and isinstance(error, StoreOperationError)
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert (error.operation, error.path, error.run_id) == ("create_run", str(db_path), planned.id)
    assert str(error) == (
        f"create_run on the database {db_path} (run {planned.id}): "
        "OperationalError: database is locked"
    )
    _, created = await store.create_run(planned)  # the lock released, the write goes through
    assert created


async def test_a_constraint_the_store_does_not_map_is_a_store_operation_error(
    store: SqliteStore, db_path: Path
) -> None:
    first, _ = await store.create_run(new_run("a"))
    with pytest.raises(StoreOperationError) as caught:
        await store.create_run(new_run("b", run_id=first.id))  # the same id, another key
    error = caught.value
    assert type(error) is StoreOperationError
    assert isinstance(error.__cause__, sqlite3.IntegrityError)
    assert error.run_id == first.id and "UNIQUE constraint failed: runs.id" in str(error)


async def test_a_row_with_bad_json_is_a_corrupt_record_error(
    store: SqliteStore, db_path: Path
) -> None:
    run, _ = await store.create_run(new_run("k"))
    raw(db_path, "UPDATE runs SET input = '{not json' WHERE id = ?", run.id)
    with pytest.raises(CorruptRecordError) as caught:
        await store.get_run(run.id)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, StoreOperationError)
    assert isinstance(error.__cause__, json.JSONDecodeError)
    assert (error.operation, error.path, error.run_id) == ("get_run", str(db_path), run.id)
    assert str(error).startswith(
        f"get_run on the database {db_path} (run {run.id}): a stored record cannot be "
        "decoded (JSONDecodeError: "
    )


async def test_a_row_with_an_unknown_status_is_a_corrupt_record_error(
    store: SqliteStore, db_path: Path
) -> None:
    await store.create_run(new_run("k"))
    raw(db_path, "UPDATE runs SET status = 'bogus'")
    with pytest.raises(CorruptRecordError) as caught:
        await store.list_runs()
    assert caught.value.operation == "list_runs" and caught.value.run_id is None
    assert isinstance(caught.value.__cause__, ValueError)
    assert "'bogus' is not a valid RunStatus" in str(caught.value)


async def test_bad_json_met_inside_a_write_is_a_corrupt_record_error(
    store: SqliteStore, db_path: Path
) -> None:
    """The routing of ``fan_out`` decodes the subscribers' patterns in its transaction."""
    await store.sync_subscribers([SubscriberRow("sub", ("order.*",), 3)], T0)
    await store.emit(NewEvent("evt_1", "order.placed", "{}", "{}", T0, T0))
    raw(db_path, "UPDATE subscribers SET patterns = '[oops'")
    with pytest.raises(CorruptRecordError) as caught:
        await store.fan_out(T0, 10)
    assert caught.value.operation == "fan_out"
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)
    raw(db_path, "UPDATE subscribers SET patterns = '[\"order.*\"]'")
    assert await store.fan_out(T0, 10) == 1  # nothing was half done


async def test_a_bad_time_in_a_row_is_a_corrupt_record_error(
    store: SqliteStore, db_path: Path
) -> None:
    await store.upsert_worker(WorkerRow("w", "host", 1, T0, T0))
    raw(db_path, "UPDATE workers SET heartbeat_at = 'yesterday'")
    with pytest.raises(CorruptRecordError) as caught:
        await store.list_workers()
    assert caught.value.operation == "list_workers"


async def test_arguments_a_store_cannot_use_are_store_argument_errors(
    store: SqliteStore,
) -> None:
    """Bug: an unknown action raised a plain ``ValueError``, an unknown status too."""
    run, _ = await store.create_run(new_run("k"))
    with pytest.raises(StoreArgumentError, match="unknown action 'explode'") as caught:
        await store.control_run(run.id, "explode", T0)
    assert isinstance(caught.value, ValueError)
    bogus: Any = ["bogus"]  # what an untyped caller might pass
    with pytest.raises(StoreArgumentError, match="unknown status in \\['bogus'\\]"):
        await store.list_runs(status=bogus)
    with pytest.raises(StoreArgumentError, match="unknown status"):
        await store.list_deliveries(status=bogus)
    with pytest.raises(StoreArgumentError, match="limit must be >= 1"):
        await store.list_events(limit=0)
    with pytest.raises(StoreArgumentError, match="bad cursor"):
        await store.list_runs(cursor="nonsense")
    with pytest.raises(StoreArgumentError, match="synchronous='sometimes'"):
        await SqliteStore.open(":memory:", synchronous="sometimes")


async def test_runtimes_own_errors_pass_as_they_are(store: SqliteStore) -> None:
    run, _ = await store.create_run(new_run("k", owner="w", status=RunStatus.RUNNING))
    with pytest.raises(LeaseLostError) as lost:
        await store.checkpoint(run.id, "someone-else", [], PROGRESS, T0)
    assert lost.value.__cause__ is None
    await store.transition(run.id, [RunStatus.RUNNING], RunStatus.COMPLETED, T0)
    with pytest.raises(InvalidTransitionError):
        await store.control_run(run.id, "pause", T0 + timedelta(seconds=1))


def test_a_file_gone_between_opening_and_noting_its_identity_is_a_store_error(
    tmp_path: Path,
) -> None:
    """Bug: ``os.stat`` on a file deleted just after it was opened raised a bare OSError."""
    gone = str(tmp_path / "gone.db")
    with pytest.raises(DatabaseReplacedError, match="cannot be found any more") as caught:
        opened_file(gone)
    assert isinstance(caught.value.__cause__, FileNotFoundError)
