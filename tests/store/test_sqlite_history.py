"""The SQLite store's layout for a long history: what a step writes, migration 5, many keys."""

from __future__ import annotations

import builtins
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import LeaseLostError
from runtime.ids import new_id
from runtime.models import DeliveryStatus, RunStatus, StepStatus
from runtime.store import sqlite_core
from runtime.store.changes import PROGRESS
from runtime.store.records import NewEvent, StepWrite, SubscriberRow, WorkerRow
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_core import migrations
from tests.helpers.records import T0, new_run

OWNER = "wrk_a"


def step(seq: int) -> StepWrite:
    completed = StepStatus.COMPLETED
    return StepWrite(seq, f"step-{seq}", completed, 1, "13", started_at=T0, ended_at=T0)


def wal_frames(path: Path) -> int:
    size = Path(f"{path}-wal").stat().st_size
    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
    return max(size - 32, 0) // (page + 24)


async def test_a_steps_checkpoint_writes_about_one_page_and_leaves_the_run_row_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "steps.db"
    store = await SqliteStore.open(str(path))
    reader = sqlite3.connect(path)
    try:
        run, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=OWNER))
        for seq in range(1, 21):  # the file and its pages grown
            await store.checkpoint(run.id, OWNER, [step(seq)], PROGRESS, T0)
        before = await store.get_run(run.id, steps=False)
        # A reader holding a snapshot keeps the WAL from being reset: it only grows.
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM runs").fetchone()
        frames = wal_frames(path)
        for seq in range(21, 71):
            # Each at its own time, as in life (a row rewritten identically is not written).
            now = T0 + timedelta(seconds=seq)
            await store.checkpoint(run.id, OWNER, [step(seq)], PROGRESS, now)
        written = wal_frames(path) - frames
        after = await store.get_run(run.id)
    finally:
        reader.close()
        await store.close()
    # One page per step (a leaf split now and then); it was three: the run row, the
    # steps table and its key index.
    assert written <= 50 * 1.5, written
    assert after.updated_at == before.updated_at
    assert [s.seq for s in after.steps] == list(range(1, 71))


async def test_a_progress_checkpoint_still_refuses_a_lost_lease_and_returns_a_request(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(str(tmp_path / "lease.db"))
    try:
        run, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=OWNER))
        await store.control_run(run.id, "pause", T0)
        request = await store.checkpoint(run.id, OWNER, [step(1)], PROGRESS, T0)
        with pytest.raises(LeaseLostError):
            await store.checkpoint(run.id, "wrk_b", [step(2)], PROGRESS, T0)
        steps = await store.load_steps(run.id)
    finally:
        await store.close()
    assert request == "pause"
    assert [s.seq for s in steps] == [1]


async def test_migration_5_keeps_every_step_of_a_schema_4_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    shipped = migrations()
    monkeypatch.setattr(sqlite_core, "migrations", lambda: [m for m in shipped if m[0] <= 4])
    old = await SqliteStore.open(str(path))
    run, _ = await old.create_run(new_run(status=RunStatus.RUNNING, owner=OWNER))
    charged = '{"id": 7}'
    compensable = StepWrite(
        2,
        "charge",
        StepStatus.COMPLETED,
        3,
        charged,
        charged,
        None,
        T0,
        T0,
        completed_order=2,
        compensable=True,
    )
    await old.checkpoint(run.id, OWNER, [step(1), compensable], PROGRESS, T0)
    await old.close()
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT * FROM steps ORDER BY run_id, seq").fetchall()

    monkeypatch.setattr(sqlite_core, "migrations", lambda: shipped)
    await (await SqliteStore.open(str(path))).close()
    with sqlite3.connect(path) as db:
        after = db.execute(
            "SELECT run_id, seq, name, status, attempts, output, compensate_input, error, "
            "started_at, ended_at, completed_order, compensable FROM steps ORDER BY run_id, seq"
        ).fetchall()
        table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'steps'").fetchone()[0]
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert after == before
    assert table.rstrip().endswith("WITHOUT ROWID")
    assert {"runs_queue", "runs_held", "runs_owner", "deliveries_due"} <= indexes
    assert not {"runs_active", "deliveries_dead"} & indexes


async def test_hundreds_of_workflows_and_subscribers_are_asked_about_in_chunks(
    tmp_path: Path,
) -> None:
    # SQLite refuses a compound SELECT of more than 500 parts: the per-key questions are
    # asked 100 keys at a time.
    store = await SqliteStore.open(str(tmp_path / "many.db"))
    names = [f"wf-{i:03}" for i in range(600)]
    subscribers = [SubscriberRow(f"sub-{i:03}", ("order.*",), 3) for i in range(600)]
    try:
        await store.upsert_worker(WorkerRow(OWNER, "host", 1, T0, T0, None))
        queued, _ = await store.create_run(new_run(workflow="wf-599", available_at=T0))
        await store.sync_subscribers(subscribers, T0)
        await store.emit(NewEvent(new_id("evt"), "order.placed", "{}", "{}", T0, T0))
        await store.fan_out(T0, 10)
        ids = [s.id for s in subscribers]
        due = await store.next_run_due(names)
        runs = await store.recoverable_runs(names, T0, T0, 10)
        unknown = await store.unclaimed_unknown(names[:-1], T0, 10)
        first_delivery = await store.next_delivery_at(ids)
        claimed = await store.claim_deliveries(OWNER, ids, T0, T0, 1000)
    finally:
        await store.close()
    assert due == T0
    assert [r.id for r in runs] == [queued.id]
    assert [r.id for r in unknown] == [queued.id]
    assert first_delivery == T0
    assert sorted(c.subscriber_id for c in claimed) == ids


async def test_a_dead_holders_delivery_due_first_is_retaken_first(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "order.db"))
    try:
        await store.sync_subscribers([SubscriberRow("audit", ("*",), 3)], T0)
        early = NewEvent(new_id("evt"), "a", "{}", "{}", T0, T0)
        late = NewEvent(new_id("evt"), "b", "{}", "{}", T0, T0 + timedelta(seconds=30))
        await store.emit(early)
        await store.fan_out(T0, 10)
        [held] = await store.claim_deliveries("wrk_gone", ["audit"], T0, T0, 1)
        await store.emit(late)
        await store.fan_out(T0, 10)
        now = T0 + timedelta(minutes=5)
        await store.upsert_worker(WorkerRow(OWNER, "host", 1, now, now, None))
        [first] = await store.claim_deliveries(OWNER, ["audit"], now, now, 1)
        [second] = await store.claim_deliveries(OWNER, ["audit"], now, now, 1)
        done = await store.finish_delivery(first.id, OWNER, DeliveryStatus.DONE, now)
    finally:
        await store.close()
    assert (first.id, first.event.id, first.attempt) == (held.id, early.id, 1)
    assert second.event.id == late.id
    assert done


async def test_the_store_never_opens_the_database_files_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closing any descriptor of a database's files releases every POSIX lock the process
    # holds on that file, SQLite's own connections' too: another process could then write
    # the WAL at the same time as this one (a run enqueued and lost was seen once a
    # checkpointer read the -shm file's header). Only SQLite may open them.
    path = tmp_path / "locks.db"
    opened: list[str] = []
    real_open, real_os_open = open, os.open

    def watched_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def watched_os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watched_open)
    monkeypatch.setattr(os, "open", watched_os_open)
    store = await SqliteStore.open(str(path))
    try:
        run, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=OWNER))
        for seq in range(1, 2001):  # many wake-ups of the checkpointer, a RESTART or more
            await store.checkpoint(run.id, OWNER, [step(seq)], PROGRESS, T0)
        await store.get_run(run.id)
        await store.change_token()
    finally:
        await store.close()
    assert [f for f in opened if f.startswith(str(path))] == []
