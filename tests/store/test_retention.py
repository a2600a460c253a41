"""Retention's rules (docs/retention.md), one test each, against a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runtime import RunStatus, StoreError
from runtime.ids import new_id
from runtime.pruner import Retention, prune
from runtime.store import sqlite_retention
from runtime.store.pruning import PruneCounts, PruneCutoffs
from runtime.store.records import NewRun
from runtime.store.sqlite import SqliteStore
from tests.store import retention_seed as seed

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
ANCIENT = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=2)
KEEP_FAILED = Retention.of("30d").cutoffs(NOW)
"""The defaults: completed history after 30 days, failed runs never."""
FAILED_TOO = Retention.of("30d", "90d").cutoffs(NOW)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(str(tmp_path / "retention.db"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def db(store: SqliteStore) -> Iterator[sqlite3.Connection]:
    """A second connection to the store's file, for seeding and reading rows."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def runs(db: sqlite3.Connection) -> set[str]:
    return {run_id for (run_id,) in db.execute("SELECT id FROM runs")}


def events(db: sqlite3.Connection) -> set[int]:
    return {seq for (seq,) in db.execute("SELECT seq FROM events")}


async def test_a_completed_run_past_retention_goes_with_its_steps_and_staged_events(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    old = seed.run(db, "completed", OLD, steps=10, staged=2)
    recent = seed.run(db, "completed", RECENT, steps=10, staged=2)

    done = await prune(store, KEEP_FAILED)

    assert runs(db) == {recent}
    assert done.counts == PruneCounts(runs=1, steps=10, staged_events=2)
    assert seed.count(db, "steps") == 10 and seed.count(db, "run_events") == 2
    assert old not in runs(db)


@pytest.mark.parametrize("status", ["failed", "compensation_failed", "canceled"])
async def test_a_run_an_operator_can_retry_is_kept_until_failed_retention(
    store: SqliteStore, db: sqlite3.Connection, status: str
) -> None:
    ancient = seed.run(db, status, ANCIENT)
    old = seed.run(db, status, OLD)

    await prune(store, KEEP_FAILED)
    assert runs(db) == {ancient, old}  # failed_retention 0: never

    await prune(store, FAILED_TOO)
    assert runs(db) == {old}  # 40 days < 90 days


@pytest.mark.parametrize("status", ["pending", "running", "sleeping", "paused", "compensating"])
async def test_a_run_that_has_not_ended_is_never_removed(
    store: SqliteStore, db: sqlite3.Connection, status: str
) -> None:
    # Created a year ago; even an end time left over from before a retry does not count.
    never_ended = seed.run(db, status, None, created_at=ANCIENT)
    retried = seed.run(db, status, ANCIENT, created_at=ANCIENT)

    await prune(store, Retention.of(1, 1).cutoffs(NOW))

    assert runs(db) == {never_ended, retried}


async def test_a_child_run_goes_only_once_its_parent_is_gone_or_goes_too(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    running_parent = seed.run(db, "running", None, created_at=ANCIENT)
    held_child = seed.run(db, "completed", OLD, parent=running_parent)
    failed_parent = seed.run(db, "failed", OLD)
    child_of_failed = seed.run(db, "completed", OLD, parent=failed_parent)
    done_parent = seed.run(db, "completed", OLD)
    child_of_done = seed.run(db, "completed", OLD, parent=done_parent)
    orphan = seed.run(db, "completed", OLD, parent="run_gone")

    await prune(store, KEEP_FAILED)

    assert runs(db) == {running_parent, held_child, failed_parent, child_of_failed}
    assert {done_parent, child_of_done, orphan}.isdisjoint(runs(db))

    db.execute("DELETE FROM steps WHERE run_id = ?", (failed_parent,))
    db.execute("DELETE FROM runs WHERE id = ?", (failed_parent,))  # an operator's cleanup
    await prune(store, KEEP_FAILED)
    assert runs(db) == {running_parent, held_child}


async def test_an_event_goes_once_old_and_every_delivery_is_done(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    delivered = seed.event(db, OLD, [("done", OLD), ("done", OLD)])
    unheard = seed.event(db, OLD, [])  # no subscriber: kept for audit until retention
    fresh = seed.event(db, RECENT, [("done", RECENT)])
    pending = seed.event(db, OLD, [("done", OLD), ("pending", OLD)])
    running = seed.event(db, OLD, [("running", OLD)])
    not_fanned_out = seed.event(db, OLD, [], fanned_out=False)

    done = await prune(store, KEEP_FAILED)

    assert events(db) == {fresh, pending, running, not_fanned_out}
    assert {delivered, unheard}.isdisjoint(events(db))
    assert done.counts == PruneCounts(events=2, deliveries=2)
    assert seed.count(db, "deliveries") == 4


async def test_an_event_with_a_dead_delivery_is_kept_until_failed_retention(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    dead_long_ago = seed.event(db, ANCIENT, [("done", ANCIENT), ("dead", ANCIENT)])
    # The event is old, but its delivery went dead (or was redriven and died) lately.
    dead_lately = seed.event(db, ANCIENT, [("dead", OLD)])

    await prune(store, KEEP_FAILED)
    assert events(db) == {dead_long_ago, dead_lately}

    done = await prune(store, FAILED_TOO)
    assert events(db) == {dead_lately}
    assert done.counts == PruneCounts(events=1, deliveries=2)


async def test_old_firings_go_but_the_newest_of_each_schedule_stays(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    for days in (300, 200, 100):
        seed.firing(db, "nightly", NOW - timedelta(days=days))
        seed.firing(db, "weekly", NOW - timedelta(days=days))
    seed.firing(db, "weekly", RECENT)

    done = await prune(store, KEEP_FAILED)

    assert done.counts == PruneCounts(firings=5)
    kept = db.execute("SELECT schedule, nominal_at FROM schedule_firings ORDER BY 1").fetchall()
    assert [schedule for schedule, _ in kept] == ["nightly", "weekly"]
    assert kept[0][1].startswith(str((NOW - timedelta(days=100)).date()))
    assert kept[1][1].startswith(str(RECENT.date()))


async def test_retention_zero_removes_nothing(store: SqliteStore, db: sqlite3.Connection) -> None:
    seed.run(db, "completed", ANCIENT)
    seed.run(db, "failed", ANCIENT)
    seed.event(db, ANCIENT, [("done", ANCIENT)])
    seed.firing(db, "nightly", ANCIENT)
    seed.firing(db, "nightly", OLD)

    done = await prune(store, Retention.of(0, 0).cutoffs(NOW))

    assert done.counts.total == 0
    assert (seed.count(db, "runs"), seed.count(db, "events")) == (2, 1)
    assert seed.count(db, "schedule_firings") == 2


async def test_an_idempotency_key_protects_for_as_long_as_its_run_is_kept(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    first = seed.run(db, "completed", OLD, key="order-1", workflow="checkout")

    def again() -> NewRun:
        return NewRun(
            id=new_id("run"),
            workflow="checkout",
            version=None,
            kind="composition",
            idempotency_key="order-1",
            status=RunStatus.PENDING,
            input="null",
            owner_id=None,
            parent_run_id=None,
            available_at=NOW,
            created_at=NOW,
        )

    found, created = await store.create_run(again())
    assert (found.id, created) == (first, False)

    await prune(store, KEEP_FAILED)

    found, created = await store.create_run(again())  # the key's window was the retention
    assert created and found.id != first


async def test_a_dry_run_counts_what_a_prune_removes_and_removes_nothing(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    for _ in range(7):
        seed.run(db, "completed", OLD, steps=4, staged=1)
        seed.run(db, "failed", ANCIENT, steps=2)
        seed.event(db, OLD, [("done", OLD)])
        seed.event(db, ANCIENT, [("dead", ANCIENT), ("done", ANCIENT)])
        seed.run(db, "running", None)
    for days in (9, 60, 70):
        seed.firing(db, "nightly", NOW - timedelta(days=days))
    before = {t: seed.count(db, t) for t in ("runs", "steps", "events", "deliveries")}

    dry = await prune(store, FAILED_TOO, dry_run=True)
    assert {t: seed.count(db, t) for t in before} == before

    done = await prune(store, FAILED_TOO, limit=3)
    assert dry.counts == done.counts
    assert done.counts == PruneCounts(
        runs=14, steps=42, staged_events=7, events=14, deliveries=21, firings=2
    )
    assert done.batches > 3  # in batches of at most 3 of each kind


async def test_a_round_walks_past_kept_events_once_and_removes_those_after_them(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    kept = [seed.event(db, ANCIENT + timedelta(seconds=i), [("dead", NOW)]) for i in range(9)]
    for i in range(5):
        seed.event(db, OLD + timedelta(seconds=i), [("done", OLD)])

    done = await prune(store, FAILED_TOO, limit=2)

    assert events(db) == set(kept)
    assert done.counts.events == 5
    assert done.batches <= 8  # 14 events walked, 2 a batch: the cursor never starts over


async def test_a_batch_is_one_transaction_a_failing_one_leaves_everything(
    store: SqliteStore, db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(5):
        seed.run(db, "completed", OLD, steps=6, staged=1)
        seed.event(db, OLD, [("done", OLD)])
    before = {t: seed.count(db, t) for t in ("runs", "steps", "run_events", "events")}
    # The runs' deletion fails after their steps and staged events were deleted.
    broken = {**sqlite_retention.DELETES, "runs": "DELETE FROM no_such_table WHERE id = ?"}
    monkeypatch.setattr(sqlite_retention, "DELETES", broken)

    with pytest.raises(StoreError, match="no_such_table"):
        await prune(store, KEEP_FAILED)

    assert {t: seed.count(db, t) for t in before} == before
    monkeypatch.undo()
    await prune(store, KEEP_FAILED, limit=2)
    assert seed.count(db, "runs") == 0


async def test_steps_never_outlive_their_run_nor_a_run_its_steps(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    kept: dict[str, int] = {}
    for index in range(60):
        status = ("completed", "failed", "running", "completed")[index % 4]
        ended = (OLD, RECENT, None, ANCIENT)[index % 4] if status != "running" else None
        run_id = seed.run(db, status, ended, steps=index % 7, staged=index % 2)
        seed.event(db, OLD, [("done", OLD)] * (index % 3))
        kept[run_id] = index % 7

    await prune(store, KEEP_FAILED, limit=7)

    assert seed.orphans(db) == {"steps": 0, "staged_events": 0, "deliveries": 0}
    for run_id in runs(db):  # every run that stays keeps all of its steps
        steps = db.execute("SELECT COUNT(*) FROM steps WHERE run_id = ?", (run_id,)).fetchone()
        assert steps[0] == kept[run_id]


async def test_cutoffs_never_remove_anything_newer_than_them(
    store: SqliteStore, db: sqlite3.Connection
) -> None:
    edge = NOW - timedelta(days=30)
    at_edge = seed.run(db, "completed", edge)
    just_before = seed.run(db, "completed", edge - timedelta(microseconds=1))

    await prune(store, PruneCutoffs(completed=edge))

    assert at_edge in runs(db) and just_before not in runs(db)
