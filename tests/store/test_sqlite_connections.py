"""The SQLite store's reader and checkpointer: reads off the writer's thread, the WAL bounded."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from runtime import RunStatus, Runtime, StepStatus, StoreError
from runtime.store import open_store, sqlite_checkpoint, sqlite_open
from runtime.store.changes import Complete
from runtime.store.records import StepWrite
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_checkpoint import Checkpointer
from runtime.store.sqlite_connection import on_thread
from tests.helpers.definitions import chain
from tests.helpers.records import T0, new_run

WAL_BOUND = 16 * 1024 * 1024
"""Bytes the -wal file may reach under a sustained load (issue 8's bar)."""


@pytest.fixture(params=["", "?fast_path=off"], ids=["fast", "queued"])
async def store(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[SqliteStore]:
    """A store on a file, writing on the fast path or always on the writer's thread."""
    opened = await open_store(f"sqlite:///{db_path}{request.param}")
    assert isinstance(opened, SqliteStore)
    try:
        yield opened
    finally:
        await opened.close()


class _Blocked:
    """The writer's thread held by a job until released (a long write, say)."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()

    def hold(self, db: sqlite3.Connection) -> None:
        self.holding.set()
        self.release.wait(30)


def _wal_size(db_path: Path) -> int:
    """Bytes of the database's -wal file (0 when there is none); one stat()."""
    try:
        return os.stat(f"{db_path}-wal").st_size
    except FileNotFoundError:
        return 0


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("runtime-checkpointer")]


@pytest.fixture
def no_checkpointer_left() -> Iterator[None]:
    before = set(_checkpointer_threads())
    yield
    assert set(_checkpointer_threads()) <= before


# -- the reader ------------------------------------------------------------------------


async def test_reads_and_the_change_watcher_do_not_wait_for_the_writers_thread(
    store: SqliteStore,
) -> None:
    record, _ = await store.create_run(new_run(workflow="wf", key="a"))
    blocked = _Blocked()
    async with anyio.create_task_group() as tg:
        tg.start_soon(on_thread, store._conn, blocked.hold)
        await anyio.to_thread.run_sync(blocked.holding.wait, 10)
        try:
            with anyio.fail_after(10):
                assert (await store.get_run(record.id)).id == record.id
                assert [r.id for r in (await store.list_runs(workflow="wf")).runs] == [record.id]
                assert len(await store.recoverable_runs(["wf"], T0, T0, 10)) == 1
                await store.change_token()
        finally:
            blocked.release.set()


async def test_a_read_issued_after_a_write_returned_sees_it(store: SqliteStore) -> None:
    for i in range(50):
        record, _ = await store.create_run(new_run(workflow="wf", key=f"r{i}"))
        assert (await store.get_run(record.id)).status == RunStatus.PENDING
        claimed = await store.claim_run(record.id, "wrk_a", None, T0)
        assert claimed is not None
        await store.checkpoint(
            record.id,
            "wrk_a",
            [StepWrite(seq=1, name="s", status=StepStatus.COMPLETED, attempts=1, output="1")],
            Complete(output="1", ended_at=T0),
            T0,
        )
        run = await store.get_run(record.id)
        assert (run.status, [s.output for s in run.steps]) == (RunStatus.COMPLETED, [1])
        assert (await store.find_run("wf", f"r{i}")) is not None


async def test_reads_run_on_a_query_only_connection_of_their_own(store: SqliteStore) -> None:
    reader = store._reader
    assert reader is not store._conn

    def pragmas(db: sqlite3.Connection) -> tuple[int, int]:
        return (
            db.execute("PRAGMA query_only").fetchone()[0],
            db.execute("PRAGMA busy_timeout").fetchone()[0],
        )

    assert await on_thread(reader, pragmas) == (1, 10_000)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await on_thread(reader, lambda db: db.execute("DELETE FROM runs"))


async def test_an_in_memory_database_keeps_reads_on_its_one_connection() -> None:
    store = await SqliteStore.open(":memory:")
    try:
        assert store._reader is store._conn
        assert store.checkpointer is None
        record, _ = await store.create_run(new_run(workflow="wf", key="m"))
        assert (await store.get_run(record.id)).id == record.id
        assert await store.change_token() == await store.change_token()
    finally:
        await store.close()


async def test_closing_the_store_closes_the_reader_and_stops_the_checkpointer(
    db_path: Path,
) -> None:
    store = await SqliteStore.open(str(db_path))
    reader, checkpointer = store._reader, store.checkpointer
    assert checkpointer is not None and checkpointer._thread.is_alive()
    await store.create_run(new_run(workflow="wf", key="c"))
    await store.close()
    assert reader._connection is None
    assert not checkpointer._thread.is_alive()
    # The last checkpoint left the file compact (nothing else has it open).
    assert _wal_size(db_path) == 0


async def test_a_store_garbage_collected_unclosed_stops_its_checkpointer(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    checkpointer = store.checkpointer
    assert checkpointer is not None
    del store
    gc.collect()
    await anyio.to_thread.run_sync(checkpointer._thread.join, 10)
    assert not checkpointer._thread.is_alive()


@pytest.mark.parametrize("broken", ["reader", "checkpointer", "fast"])
async def test_a_failure_to_open_the_reader_or_checkpointer_is_named_like_the_writers(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str, no_checkpointer_left: None
) -> None:
    await (await SqliteStore.open(str(db_path))).close()  # the file exists, migrated

    def refuse(*args: object, **kwargs: object) -> None:
        error = sqlite3.DatabaseError("file is not a database")
        error.sqlite_errorcode = sqlite3.SQLITE_NOTADB  # type: ignore[attr-defined]
        raise error

    target = {
        "reader": (sqlite_open, "_configure_reader"),
        "checkpointer": (Checkpointer, "open"),
        "fast": (sqlite_open, "open_fast"),
    }[broken]
    monkeypatch.setattr(*target, refuse)
    with pytest.raises(StoreError, match=f"{db_path} is not a SQLite database"):
        await SqliteStore.open(str(db_path))


# -- the checkpointer ------------------------------------------------------------------


async def test_the_writers_never_checkpoint_and_cut_the_wal_back_when_it_starts_over(
    store: SqliteStore,
) -> None:
    def pragmas(db: sqlite3.Connection) -> tuple[int, int]:
        return (
            db.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
            db.execute("PRAGMA journal_size_limit").fetchone()[0],
        )

    expected = (0, sqlite_checkpoint.WAL_KEEP)
    assert await on_thread(store._conn, pragmas) == expected
    if store._fast is not None:
        assert pragmas(store._fast) == expected


async def test_every_so_many_commits_wake_the_checkpointer_without_waiting_for_it(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = store.checkpointer
    assert checkpointer is not None
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_EVERY", 5)
    wakes: list[int] = []
    ran = threading.Event()
    # The checkpointer's thread is held in its first checkpoint: writes go on all the same.
    held = threading.Event()
    real = checkpointer._checkpoint

    def checkpoint() -> None:
        held.wait(30)
        real()
        ran.set()

    def wake() -> None:
        wakes.append(1)
        Checkpointer.wake(checkpointer)

    monkeypatch.setattr(checkpointer, "wake", wake)
    monkeypatch.setattr(checkpointer, "_checkpoint", checkpoint)
    with anyio.fail_after(10):
        for i in range(12):
            await store.create_run(new_run(workflow="wf", key=f"k{i}"))
    assert len(wakes) == 2
    held.set()
    assert await anyio.to_thread.run_sync(ran.wait, 10)
    assert checkpointer.stats.wakeups >= 1


def _scripted(checkpointer: Checkpointer, answers: list[tuple[int, int, int]]) -> list[str]:
    """Make ``checkpointer`` answer ``answers`` in turn; return the modes it asked for."""
    modes: list[str] = []

    def run(mode: str) -> tuple[int, int, int]:
        modes.append(mode)
        return answers.pop(0)

    checkpointer._run = run  # type: ignore[method-assign]
    return modes


async def test_a_wal_file_within_what_writers_keep_is_not_checkpointed(
    store: SqliteStore,
) -> None:
    checkpointer = store.checkpointer
    assert checkpointer is not None
    for i in range(5):
        await store.create_run(new_run(workflow="wf", key=f"small{i}"))
    real = checkpointer._run
    try:
        modes = _scripted(checkpointer, [])
        checkpointer._checkpoint()
        assert modes == []
    finally:
        checkpointer._run = real  # type: ignore[method-assign]
    assert (checkpointer.stats.wakeups, checkpointer.stats.checkpoints) == (1, 0)


async def test_a_large_wal_is_caught_up_passively_then_restarted(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = store.checkpointer
    assert checkpointer is not None
    # Past what writers keep, whatever the file's size.
    monkeypatch.setattr(sqlite_checkpoint, "WAL_KEEP", -1)
    real = checkpointer._run
    above = checkpointer._restart_frames + 1
    try:
        # Small: a passive checkpoint only.
        modes = _scripted(checkpointer, [(0, above - 1, above - 1)])
        checkpointer._checkpoint()
        assert modes == ["PASSIVE"]
        # Large, and written to meanwhile: passive again until little is left, then RESTART.
        modes = _scripted(
            checkpointer,
            [
                (0, above, 10),
                (0, above + 500, above),
                (0, above + 520, above + 500),
                (0, above + 520, above + 520),
            ],
        )
        checkpointer._checkpoint()
        assert modes == ["PASSIVE", "PASSIVE", "PASSIVE", "RESTART"]
        assert (checkpointer.stats.restarts, checkpointer.stats.busy) == (1, 0)
        # A RESTART that met readers or a writer for too long is counted, tried again later.
        modes = _scripted(checkpointer, [(0, above, above), (1, above, above)])
        checkpointer._checkpoint()
        assert modes == ["PASSIVE", "RESTART"]
        assert (checkpointer.stats.restarts, checkpointer.stats.busy) == (1, 1)
        assert checkpointer.stats.frames == above
    finally:
        checkpointer._run = real  # type: ignore[method-assign]
    # For real: a WAL over the limit is restarted, and the next writer starts it over.
    checkpointer._restart_frames = 0
    for i in range(5):
        await store.create_run(new_run(workflow="wf", key=f"big{i}"))
    checkpointer._checkpoint()
    assert checkpointer.stats.restarts == 2
    before = checkpointer.stats.frames
    await store.create_run(
        new_run(workflow="wf", key="restarted")
    )  # this writer starts the WAL over
    after = checkpointer._run("PASSIVE")
    assert after is not None and 0 < after[1] < before, (before, after)


async def test_a_failed_checkpoint_is_logged_and_not_fatal(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = store.checkpointer
    assert checkpointer is not None
    monkeypatch.setattr(sqlite_checkpoint, "WAL_KEEP", -1)

    class Failing:
        def execute(self, sql: str) -> object:
            raise sqlite3.OperationalError("disk I/O error")

    real, checkpointer._db = checkpointer._db, Failing()  # type: ignore[assignment]
    try:
        with capture_logs() as logs:
            checkpointer._checkpoint()
    finally:
        checkpointer._db = real
    assert checkpointer.stats.failures == 1
    assert logs == [
        {
            "event": "wal_checkpoint_failed",
            "path": store.path,
            "mode": "PASSIVE",
            "error": "disk I/O error",
            "log_level": "warning",
        }
    ]
    await store.create_run(new_run(workflow="wf", key="after"))


async def test_the_wal_stays_bounded_under_a_sustained_load(db_path: Path) -> None:
    """Tens of thousands of step checkpoints from concurrent runs, a reader polling."""
    steps, runners, total = 100, 8, 30_000
    workflow = chain("wal-load", steps)
    largest = 0
    done = 0

    def sample() -> None:
        nonlocal largest
        largest = max(largest, _wal_size(db_path))

    async with Runtime(database=f"sqlite:///{db_path}") as rt:
        store = rt.store
        assert isinstance(store, SqliteStore)

        async def runner() -> None:
            nonlocal done
            while done < total:
                result = await workflow(rt.container).run(input={"start": 0})
                assert result.result == steps
                done += steps
                sample()

        async def poller() -> None:
            while True:
                await store.list_runs(workflow="wal-load", limit=20)
                await store.change_token()
                sample()
                await anyio.sleep(0.005)

        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                tg.start_soon(poller)
                async with anyio.create_task_group() as runs:
                    for _ in range(runners):
                        runs.start_soon(runner)
                tg.cancel_scope.cancel()
        sample()
        stats = store.checkpointer.stats if store.checkpointer else None
    assert stats is not None and stats.checkpoints > 0
    assert largest <= WAL_BOUND, f"the WAL reached {largest / 2**20:.1f} MB ({stats})"


# -- the change watcher ----------------------------------------------------------------


def _commit_elsewhere(db_path: Path, worker: str) -> None:
    """A commit by another connection (another process, as far as SQLite can tell)."""
    with sqlite3.connect(db_path) as other:
        other.execute(
            "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) "
            "VALUES (?, 'h', 1, 'x', 'x')",
            (worker,),
        )
    other.close()


async def test_the_change_token_moves_for_another_process_and_stays_when_nothing_commits(
    store: SqliteStore, db_path: Path
) -> None:
    token = await store.change_token()
    assert await store.change_token() == token
    _commit_elsewhere(db_path, "w1")
    moved = await store.change_token()
    assert moved != token
    assert await store.change_token() == moved
    _commit_elsewhere(db_path, "w2")
    assert await store.change_token() != moved


async def test_an_own_commit_the_token_cannot_tell_from_another_process_counts_as_a_change(
    db_path: Path,
) -> None:
    # Without a fast connection the token is read on the reader, which sees every
    # commit: this process's own commits may move it (a hint: loops scan once more).
    store = await open_store(f"sqlite:///{db_path}?fast_path=off")
    try:
        token = await store.change_token()
        await store.create_run(new_run(workflow="wf", key="own"))
        assert await store.change_token() != token
    finally:
        await store.close()


async def test_a_wal_restart_by_the_checkpointer_is_not_taken_for_a_commit(
    db_path: Path,
) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        assert store.checkpointer is not None
        for i in range(20):
            await store.create_run(new_run(workflow="wf", key=f"w{i}"))
        token = await store.change_token()
        assert store.checkpointer._run("PASSIVE") is not None
        restarted = store.checkpointer._run("RESTART")
        assert restarted is not None and restarted[0] == 0  # not busy: it got through
        await store.create_run(
            new_run(workflow="wf", key="after")
        )  # this writer starts the WAL over
        assert await store.change_token() == token
    finally:
        await store.close()
