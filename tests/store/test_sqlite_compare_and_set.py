"""The SQLite store applies a rule's decision only while the row holds what the rule read.

SQLite's write transaction holds the whole database, so nothing can change a row between
the read and the write; these tests change it there on purpose (a patched write, a
trigger) to show what a backend whose transactions interleave does: decide again from
what it reads then, or report the conflict with nothing written.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.clock import to_text
from runtime.errors import InvalidTransitionError, StoreOperationError
from runtime.models import Overlap, RunStatus
from runtime.store import sqlite_control
from runtime.store.records import ScheduleSpec
from runtime.store.rules.state_table import StateChange
from runtime.store.sqlite import SqliteStore
from tests.helpers.records import T0, new_run

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(str(tmp_path / "cas.db"))
    try:
        yield opened
    finally:
        await opened.close()


def change_under_the_rule(sets: str, times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``UPDATE runs SET {sets}`` land between the state table's read and write.

    ``sets`` may use ``:n``, the number of the decision (1, 2 ...), to differ each time.
    """
    calls: list[int] = []
    apply = sqlite_control._apply

    def sneaky(
        db: sqlite3.Connection, change: StateChange, read: Mapping[str, Any], now: Any
    ) -> bool:
        calls.append(1)
        if len(calls) <= times:
            db.execute(
                f"UPDATE runs SET {sets} WHERE id = :id", {"id": read["id"], "n": len(calls)}
            )
        return apply(db, change, read, now)

    monkeypatch.setattr(sqlite_control, "_apply", sneaky)
    return calls


async def test_a_run_changed_under_the_rule_is_decided_again(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner="wrk_1"))
    calls = change_under_the_rule("control = 'cancel'", 1, monkeypatch)
    # First decided "ask the worker to pause"; the cancel that landed meanwhile wins.
    with pytest.raises(InvalidTransitionError, match="a cancel is already under way"):
        await store.control_run(run.id, "pause", T0)
    assert len(calls) == 1  # the refusal came from the second decision, before a write


async def test_a_decision_made_again_is_applied(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner="wrk_1"))
    # The worker let go of the run meanwhile: the pause takes effect at once.
    calls = change_under_the_rule("owner_id = NULL", 1, monkeypatch)
    paused = await store.control_run(run.id, "pause", T0 + timedelta(seconds=1))
    assert len(calls) == 2
    assert (paused.status, paused.control, paused.owner_id) == (RunStatus.PAUSED, None, None)
    assert paused.updated_at == T0 + timedelta(seconds=1)


async def test_a_run_that_keeps_changing_is_reported_with_nothing_written(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner="wrk_1"))
    calls = change_under_the_rule("wake_at = '2030-01-0' || :n", 100, monkeypatch)
    with pytest.raises(
        StoreOperationError, match="the run kept changing while cancel applied"
    ) as raised:
        await store.control_run(run.id, "cancel", T0)
    assert raised.value.operation == "control_run"
    assert raised.value.run_id == run.id
    assert len(calls) == sqlite_control._DECISIONS
    after = await store.get_run(run.id)
    assert (after.status, after.control, after.updated_at) == (
        RunStatus.RUNNING,
        None,
        run.updated_at,
    )


async def test_a_schedule_changed_under_the_rule_fires_nothing(
    store: SqliteStore, tmp_path: Path
) -> None:
    spec = ScheduleSpec("nightly", "wf", "0 3 * * *", "UTC", None, Overlap.SKIP, 60.0, T0)
    await store.sync_schedules([spec], T0)
    # Another scheduler's firing counted between this one's read and its write.
    with sqlite3.connect(tmp_path / "cas.db") as db:
        db.execute(
            "CREATE TRIGGER meanwhile AFTER INSERT ON schedule_firings BEGIN "
            "UPDATE schedules SET executions = executions + 1 WHERE name = NEW.schedule; END"
        )
    later = T0 + timedelta(days=1)
    run = new_run()
    with pytest.raises(StoreOperationError, match="changed under a rule") as raised:
        await store.fire("nightly", T0, run, later, [T0 - timedelta(days=1)], T0)
    assert raised.value.operation == "fire"
    [stored] = await store.list_schedules()
    assert (stored.executions, stored.next_fire_at, stored.last_run_id) == (0, T0, None)
    assert await store.list_firings("nightly") == []
    assert await store.find_run(run.workflow, run.idempotency_key or "") is None


async def test_a_firing_claimed_elsewhere_meanwhile_is_none_not_an_error(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Another scheduler fires this nominal time, and moves the plan on, between this one's
    read and its claim: the claim is lost, the plan needs no moving, and ``fire`` returns
    ``None`` ("fired elsewhere"), as the protocol says, instead of raising."""
    spec = ScheduleSpec("nightly", "wf", "0 3 * * *", "UTC", None, Overlap.SKIP, 60.0, T0)
    await store.sync_schedules([spec], T0)
    later = T0 + timedelta(days=1)
    with sqlite3.connect(tmp_path / "cas.db") as db:
        db.execute(
            "CREATE TRIGGER elsewhere AFTER INSERT ON schedule_firings "
            "WHEN NEW.outcome = 'missed' BEGIN "
            "INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, recorded_at) "
            f"VALUES (NEW.schedule, '{to_text(T0)}', 'started', 'run_other', NEW.recorded_at); "
            "UPDATE schedules SET executions = executions + 1, "
            f"next_fire_at = '{to_text(later)}' WHERE name = NEW.schedule; END"
        )
    run = new_run()

    assert await store.fire("nightly", T0, run, later, [T0 - timedelta(days=1)], T0) is None

    [stored] = await store.list_schedules()
    assert (stored.executions, stored.next_fire_at) == (1, later)
    assert await store.find_run(run.workflow, run.idempotency_key or "") is None


async def test_one_schedule_given_twice_is_synced_once_the_last_way(store: SqliteStore) -> None:
    first = ScheduleSpec("nightly", "wf", "0 3 * * *", "UTC", None, Overlap.SKIP, 60.0, T0)
    second = ScheduleSpec("nightly", "wf", "0 4 * * *", "UTC", None, Overlap.SKIP, 60.0, T0)
    for specs in ([first, second], [second, first, second]):
        [stored] = await store.sync_schedules(specs, T0)
        assert stored.expression == "0 4 * * *"


async def test_a_schedule_fired_elsewhere_during_a_sync_is_decided_again(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Another process fires a schedule between this sync's read and its write: the sync
    reads the row again and applies its spec to it (a start-up is not refused)."""
    known = ScheduleSpec("nightly", "wf", "0 3 * * *", "UTC", None, Overlap.SKIP, 60.0, T0)
    await store.sync_schedules([known], T0)
    later = T0 + timedelta(days=1)
    with sqlite3.connect(tmp_path / "cas.db") as db:
        db.execute(
            "CREATE TRIGGER fired_elsewhere AFTER INSERT ON schedules "
            "WHEN NEW.name = 'hourly' BEGIN "
            "UPDATE schedules SET executions = executions + 1, "
            f"next_fire_at = '{to_text(later)}' WHERE name = 'nightly'; END"
        )
    new = ScheduleSpec("hourly", "wf", "0 * * * *", "UTC", None, Overlap.SKIP, 60.0, T0)
    changed = dataclasses.replace(known, expression="0 4 * * *", next_fire_at=later)

    synced = await store.sync_schedules([new, changed], T0)

    nightly = next(s for s in synced if s.name == "nightly")
    assert (nightly.expression, nightly.executions, nightly.next_fire_at) == (
        "0 4 * * *",
        1,
        later,
    )
