"""SQLite specifics of the store: WAL, the schema version check, reopening, group commit."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from runtime import LeaseLostError, RunStatus, SchemaVersionError, StepStatus, StoreError
from runtime.ids import new_id
from runtime.store import sqlite_batch, sqlite_core
from runtime.store.changes import Complete
from runtime.store.records import NewRun, StepWrite
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_core import migrations

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def new_run(
    key: str | None = None,
    *,
    run_id: str | None = None,
    status: RunStatus = RunStatus.PENDING,
    owner: str | None = None,
) -> NewRun:
    return NewRun(
        id=run_id or new_id("run"),
        workflow="wf",
        version=None,
        kind="composition",
        idempotency_key=key,
        status=status,
        input=json.dumps({"key": key}),
        owner_id=owner,
        parent_run_id=None,
        available_at=T0,
        created_at=T0,
    )


def file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return [row[0] for row in rows]


async def test_the_database_is_in_wal_mode(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


async def test_a_new_file_gets_the_latest_schema_version(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    await store.close()

    with sqlite3.connect(db_path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM runtime_schema")]
    assert versions == [version for version, _ in migrations()]
    assert {"runs", "steps", "workers", "runtime_schema"} <= set(tables(db_path))


async def test_a_newer_schema_is_refused_and_nothing_is_written(db_path: Path) -> None:
    # What a newer runtime would leave behind: a WAL-mode file with a higher version.
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode = WAL")
    with db:
        db.execute("CREATE TABLE runtime_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO runtime_schema (version) VALUES (999)")
        db.execute("CREATE TABLE future_things (id TEXT)")
    db.close()
    before = file_bytes(db_path)

    with pytest.raises(SchemaVersionError, match="999") as caught:
        await SqliteStore.open(str(db_path))

    assert isinstance(caught.value, StoreError)
    assert tables(db_path) == ["future_things", "runtime_schema"]
    with sqlite3.connect(db_path) as db:
        assert [row[0] for row in db.execute("SELECT version FROM runtime_schema")] == [999]
    assert file_bytes(db_path) == before  # not a byte of the file changed


async def test_opening_twice_does_not_migrate_twice(db_path: Path) -> None:
    await (await SqliteStore.open(str(db_path))).close()
    await (await SqliteStore.open(str(db_path))).close()

    with sqlite3.connect(db_path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM runtime_schema")]
    assert versions == [version for version, _ in migrations()]


async def test_a_migration_numbered_below_the_applied_ones_is_still_applied(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Migrations written on parallel branches land out of numbering order: a database
    # migrated by a version with migrations 1 to 101 but not 100 must still get 100 once
    # it ships. Failed before: only versions above the highest applied one were applied.
    later = (100, "CREATE TABLE landed_late (id TEXT);")
    without = [*migrations(), (101, "CREATE TABLE landed_first (id TEXT);")]
    monkeypatch.setattr(sqlite_core, "migrations", lambda: without)
    await (await SqliteStore.open(str(db_path))).close()
    assert "landed_late" not in tables(db_path)

    monkeypatch.setattr(sqlite_core, "migrations", lambda: sorted([*without, later]))
    await (await SqliteStore.open(str(db_path), create=False)).close()  # a read migrates too
    assert "landed_late" in tables(db_path)
    with sqlite3.connect(db_path) as db:
        versions = sorted(row[0] for row in db.execute("SELECT version FROM runtime_schema"))
    assert versions == sorted({*(v for v, _ in without), 100})


async def test_reopening_an_existing_file_keeps_its_data(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    record, _ = await store.create_run(new_run("kept", status=RunStatus.RUNNING, owner="wrk_a"))
    await store.checkpoint(
        record.id,
        "wrk_a",
        [StepWrite(seq=1, name="first", status=StepStatus.COMPLETED, attempts=2, output='"one"')],
        Complete(output='{"done": true}', ended_at=T0),
        T0,
    )
    await store.close()

    reopened = await SqliteStore.open(str(db_path))
    try:
        run = await reopened.get_run(record.id)
        again, created = await reopened.create_run(new_run("kept"))
    finally:
        await reopened.close()

    assert (run.status, run.output, run.input) == (
        RunStatus.COMPLETED,
        {"done": True},
        {"key": "kept"},
    )
    assert [(s.name, s.attempts, s.output) for s in run.steps] == [("first", 2, "one")]
    assert (again.id, created) == (record.id, False)


@pytest.fixture(params=["queued", "fast"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both write paths: the thread's queue, and the fast path with every write yielding."""
    if request.param == "fast":
        # Writers that meet in one turn of the loop share a transaction on the fast path
        # too; a writer alone yields once it has held the loop a while (here: always).
        monkeypatch.setattr(sqlite_batch, "TURN_EVERY", 0.0)
    return bool(request.param == "fast")


async def test_concurrent_writes_are_group_committed(db_path: Path, write_path: bool) -> None:
    store = await SqliteStore.open(str(db_path), fast=write_path)
    results: dict[int, tuple[str, bool]] = {}
    writes = 40

    async def write(i: int) -> None:
        record, created = await store.create_run(new_run(f"key-{i}"))
        results[i] = (record.idempotency_key or "", created)

    try:
        before = store.commits
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(writes):
                    tg.start_soon(write, i)
        commits = store.commits - before
        fast_commits = store.fast_commits
        page = await store.list_runs(limit=100)
    finally:
        await store.close()

    assert 1 <= commits < writes
    assert (fast_commits > 0) is write_path
    assert results == {i: (f"key-{i}", True) for i in range(writes)}
    assert len(page.runs) == writes


async def test_one_failing_write_in_a_batch_does_not_undo_the_others(
    db_path: Path, write_path: bool
) -> None:
    store = await SqliteStore.open(str(db_path), fast=write_path)
    owned, _ = await store.create_run(new_run("owned", status=RunStatus.RUNNING, owner="wrk_a"))
    taken, _ = await store.create_run(new_run("taken"))
    outcomes: dict[str, object] = {}

    async def create(name: str, run_id: str | None = None) -> None:
        try:
            record, created = await store.create_run(new_run(name, run_id=run_id))
            outcomes[name] = (record.idempotency_key, created)
        except StoreError as exc:
            outcomes[name] = exc

    async def steal() -> None:
        try:
            await store.checkpoint(
                owned.id,
                "wrk_thief",
                [StepWrite(seq=1, name="stolen", status=StepStatus.COMPLETED, attempts=1)],
                Complete(output='"stolen"', ended_at=T0),
                T0,
            )
            outcomes["steal"] = "written"
        except LeaseLostError as exc:
            outcomes["steal"] = exc

    try:
        before = store.commits
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                # The first write leads; everything after it queues up into one batch.
                tg.start_soon(create, "lead")
                for i in range(5):
                    tg.start_soon(create, f"before-{i}")
                tg.start_soon(steal)
                tg.start_soon(create, "duplicate-id", taken.id)
                for i in range(5):
                    tg.start_soon(create, f"after-{i}")
        commits = store.commits - before
        owned_now = await store.get_run(owned.id)
        keys = {run.idempotency_key for run in (await store.list_runs(limit=100)).runs}
    finally:
        await store.close()

    assert commits < 13
    assert isinstance(outcomes.pop("steal"), LeaseLostError)
    assert isinstance(outcomes.pop("duplicate-id"), StoreError)
    good = ["lead"] + [f"before-{i}" for i in range(5)] + [f"after-{i}" for i in range(5)]
    assert outcomes == {name: (name, True) for name in good}
    assert keys == {"owned", "taken", *good}
    assert (owned_now.status, owned_now.owner_id, owned_now.steps) == (
        RunStatus.RUNNING,
        "wrk_a",
        [],
    )


async def test_a_write_after_a_failed_batch_still_works(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    try:
        first, _ = await store.create_run(new_run("a"))
        with pytest.raises(StoreError):
            await store.create_run(new_run("b", run_id=first.id))
        second, created = await store.create_run(new_run("c"))
    finally:
        await store.close()

    assert created is True
    assert second.idempotency_key == "c"


async def test_the_store_rejects_a_bad_synchronous_setting(db_path: Path) -> None:
    with pytest.raises(StoreError, match="synchronous"):
        await SqliteStore.open(str(db_path), synchronous="off")


async def test_schema_3_marks_the_steps_written_before_that_are_owed_a_compensation(
    db_path: Path,
) -> None:
    # A file written by the previous version (schema 2), with steps of a run mid-rollback.
    db = sqlite3.connect(db_path)
    with db:
        db.execute("CREATE TABLE runtime_schema (version INTEGER NOT NULL)")
        for version, sql in migrations()[:2]:
            db.executescript(sql)
            db.execute("INSERT INTO runtime_schema (version) VALUES (?)", (version,))
        rows = [
            (1, "completed", "null"),  # completed with a compensation (its input: null)
            (2, "completed", None),  # completed, no compensation
            (3, "compensating", None),  # its compensation began: it had one
            (4, "failed", None),  # failed with no compensate_input: not known
        ]
        db.executemany(
            "INSERT INTO steps (run_id, seq, name, status, attempts, compensate_input) "
            "VALUES ('run_1', ?, 's', ?, 1, ?)",
            rows,
        )
    db.close()

    store = await SqliteStore.open(str(db_path))
    try:
        steps = await store.load_steps("run_1")
    finally:
        await store.close()
    assert [(s.seq, s.compensable) for s in steps] == [(1, True), (2, False), (3, True), (4, False)]
