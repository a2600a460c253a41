"""Every statement the store runs seeks: none scans or sorts the history (STYLE 14).

A workload calls every method of the store, in every shape its callers use (each
listing filter, with and without a cursor; claims with live and dead holders; each
operator action), while every statement executed is captured. Then each statement's
plan is read, on the database that workload left, and again once years of history
have been added and ``ANALYZE`` has given the planner statistics to choose with. A
new statement that scans ``runs``, ``steps``, ``events``, ``deliveries`` or sorts
over them fails here.
"""

from __future__ import annotations

import inspect
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.ids import new_id
from runtime.models import DeliveryStatus, RunStatus, StepStatus
from runtime.store.base import Store
from runtime.store.changes import (
    PROGRESS,
    Complete,
    EndRollback,
    Park,
    Pause,
    Release,
    Sleep,
    StartRollback,
    Woke,
)
from runtime.store.pruning import PruneCutoffs
from runtime.store.records import (
    NewEvent,
    ScheduleSpec,
    StagedEvent,
    StepWrite,
    SubscriberRow,
    WorkerRow,
)
from runtime.store.sqlite import SqliteStore
from tests.helpers.records import T0, new_run
from tests.store.plans import LIVE_INDEXES, add_history, capture, problems, queries

WORKER = WorkerRow("wrk_live", "host", 1, T0, T0, None)
GONE = WorkerRow("wrk_gone", "host", 2, T0, T0, None)
ERROR = json.dumps({"type": "E", "message": "m", "step": None, "traceback": None})


def event(name: str, key: str | None = None) -> NewEvent:
    return NewEvent(new_id("evt"), name, "{}", "{}", T0, T0, idempotency_key=key)


def step(seq: int, status: StepStatus = StepStatus.COMPLETED, **fields: object) -> StepWrite:
    return StepWrite(seq=seq, name=f"step-{seq}", status=status, attempts=1, **fields)  # type: ignore[arg-type]


async def workload(store: Any) -> None:
    """Call every store method in the shapes the engine, bus, scheduler and CLI use."""
    later = T0 + timedelta(seconds=5)
    await store.upsert_worker(WORKER)
    await store.upsert_worker(GONE)
    await store.heartbeat(WORKER.id, T0)
    await store.list_workers()

    # Runs: created held and queued, driven step by step, ended, deferred.
    held, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=WORKER.id, key="k"))
    await store.create_run(new_run(status=RunStatus.RUNNING, owner=WORKER.id, key="k"))
    await store.find_run(held.workflow, "k")
    await store.checkpoint(held.id, WORKER.id, [step(1)], PROGRESS, T0)
    staged = step(2, events=(StagedEvent("staged", "{}", "{}"),))
    await store.checkpoint(held.id, WORKER.id, [staged], Woke(), T0)
    await store.control_run(held.id, "pause", T0)  # a request the next checkpoint returns
    await store.checkpoint(held.id, WORKER.id, [step(3)], PROGRESS, T0)
    done = Complete(output="1", ended_at=T0)
    await store.checkpoint(held.id, WORKER.id, [step(4)], done, T0)  # folded: request pending
    await store.checkpoint(held.id, WORKER.id, [], Pause(), T0)
    await store.control_run(held.id, "resume", T0)
    for change in (Park(later), Sleep(later), Release(later)):
        await store.claim_run(held.id, WORKER.id, None, T0)
        await store.checkpoint(held.id, WORKER.id, [], change, T0)
    await store.claim_run(held.id, WORKER.id, None, later)
    await store.checkpoint(held.id, WORKER.id, [step(5)], done, T0)
    queued, _ = await store.create_run(new_run(workflow="other"))
    await store.claim_run(queued.id, WORKER.id, None, T0, pin=("1", "composition"))
    await store.defer_run(queued.id, WORKER.id, ERROR, later)
    orphan, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=GONE.id))
    await store.transition(orphan.id, [RunStatus.RUNNING], RunStatus.SLEEPING, T0)
    failing, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=WORKER.id))
    await store.checkpoint(failing.id, WORKER.id, [step(1)], PROGRESS, T0)
    await store.checkpoint(
        failing.id,
        WORKER.id,
        [step(2, StepStatus.FAILED)],
        StartRollback(ERROR, cancel=True),
        T0,
    )
    fail = EndRollback(RunStatus.FAILED, T0)
    await store.checkpoint(failing.id, WORKER.id, [step(1, StepStatus.COMPENSATED)], fail, T0)
    broken, _ = await store.create_run(new_run(status=RunStatus.RUNNING, owner=WORKER.id))
    await store.checkpoint(broken.id, WORKER.id, [], StartRollback(), T0)
    end = EndRollback(RunStatus.COMPENSATION_FAILED, T0)
    await store.checkpoint(broken.id, WORKER.id, [step(1, StepStatus.COMPENSATION_FAILED)], end, T0)
    await store.control_run(failing.id, "retry", T0)
    for action in ("pause", "resume", "cancel"):
        await store.control_run(orphan.id, action, T0)
    await store.control_run(queued.id, "cancel", T0)

    # The worker's periodic reads.
    for names in (["order-processing"], ["order-processing", "other"]):
        await store.next_run_due(names)
        await store.recoverable_runs(names, later, T0, 10)
        await store.unclaimed_unknown(names, later, 20)
    await store.unclaimed_unknown([], later, 20)

    # Listings, in every shape, first page and a page deep.
    for status in (None, [RunStatus.COMPLETED], [RunStatus.FAILED, RunStatus.CANCELED]):
        for workflow in (None, "order-processing"):
            page = await store.list_runs(status=status, workflow=workflow, limit=1)
            cursor = page.next_cursor or f"{T0.isoformat()}|{held.id}"
            await store.list_runs(status=status, workflow=workflow, limit=1, cursor=cursor)
    await store.get_run(held.id)
    await store.get_run(held.id, steps=False)
    await store.load_steps(held.id)
    # GET /metrics: each (workflow, status) counted by an equality seek on an index
    # holding both, read as index entries only (its cost follows the runs kept).
    assert sum((await store.count_runs()).values()) > 0

    # The bus: subscribers, fan-out, claims (a dead holder's too), outcomes, listings.
    subscribers = [SubscriberRow("audit", ("order.*",), 3), SubscriberRow("mail", ("*",), 1)]
    await store.sync_subscribers(subscribers, T0)
    await store.list_subscribers()
    first, _ = await store.emit(event("order.placed", key="e1"))
    await store.emit(event("order.placed", key="e1"))
    await store.emit(event("user.created"))
    await store.fan_out(T0, 100)
    await store.next_delivery_at(["audit", "mail"])
    claimed = await store.claim_deliveries(GONE.id, ["audit", "mail"], T0, T0, 10)
    outcomes = [DeliveryStatus.DONE, DeliveryStatus.DEAD, DeliveryStatus.DEAD]
    for work, status in zip(claimed, outcomes, strict=False):
        assert await store.finish_delivery(work.id, GONE.id, status, T0, error=ERROR)
    await store.emit(event("order.shipped"))
    await store.fan_out(T0, 100)
    await store.claim_deliveries(GONE.id, ["audit"], T0, T0, 1)  # left held by a dead worker
    assert await store.claim_deliveries(WORKER.id, ["audit", "mail"], later, later, 10)
    await store.remove_workers([GONE.id], T0)
    for name in (None, "order.placed"):
        page = await store.list_events(name=name, limit=1)
        await store.list_events(name=name, limit=1, cursor=page.next_cursor or "99")
    for statuses in (None, [DeliveryStatus.DEAD], [DeliveryStatus.DEAD, DeliveryStatus.DONE]):
        for subscriber in (None, "audit"):
            page = await store.list_deliveries(status=statuses, subscriber_id=subscriber, limit=1)
            cursor = page.next_cursor or f"9|{new_id('dlv')}"
            await store.list_deliveries(
                status=statuses, subscriber_id=subscriber, limit=1, cursor=cursor
            )
    await store.list_deliveries(event_id=first, limit=5)
    events = await store.list_events(limit=50)
    await store.deliveries_of_events([e.seq for e in events.items])
    dead = await store.list_deliveries(status=[DeliveryStatus.DEAD])
    assert dead.items
    await store.get_delivery(dead.items[0].id)
    assert (await store.count_deliveries())[DeliveryStatus.DEAD] == len(dead.items)
    await store.redrive([d.id for d in dead.items], T0)
    await store.redrive(None, T0)

    # The scheduler.
    spec = ScheduleSpec("nightly", "order-processing", "0 3 * * *", "UTC", None, "skip", 60.0, T0)
    await store.sync_schedules([spec], T0, WORKER.id, T0)
    await store.list_schedules()
    await store.fire("nightly", T0, new_run(), later, [T0 - timedelta(days=1)], T0)
    await store.fire("nightly", later, new_run(), later + later.resolution, [], later)
    await store.fire("nightly", later + later.resolution, None, None, [], later)
    await store.list_firings("nightly")
    # Retention (the service's pruner, runtime prune): a dry run, then a batch that
    # removes what the workload ended (tests/store/test_retention_plans.py has more).
    past = PruneCutoffs(completed=later + timedelta(days=1), failed=later + timedelta(days=1))
    await store.prune(past, dry_run=True)
    await store.prune(past)
    token = await store.change_token()
    await store.wait_change(token, 0.0)
    await store.database_time()
    await store.check_file()


class Recorder:
    """A store that notes which of its methods were called."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.called: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.called.add(name)
        return getattr(self.store, name)


@pytest.fixture
async def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], set[str]]:
    # Created first, so that the migrations' statements are not among those checked.
    await (await SqliteStore.open(str(tmp_path / "plans.db"))).close()
    with capture(monkeypatch) as seen:
        recorder = Recorder(await SqliteStore.open(str(tmp_path / "plans.db")))
        try:
            await workload(recorder)
        finally:
            await recorder.store.close()
    return queries(seen), recorder.called


@pytest.fixture
def statements(recorded: tuple[list[str], set[str]]) -> list[str]:
    return recorded[0]


async def test_the_workload_calls_every_method_of_the_store(
    recorded: tuple[list[str], set[str]],
) -> None:
    protocol = {
        name
        for name, value in inspect.getmembers(Store, inspect.iscoroutinefunction)
        if name not in ("close", "__aenter__")
    }
    assert "prune" in protocol  # declared in store/pruning.py's PruneStore
    assert protocol - recorded[1] == set()


async def test_the_workload_reaches_every_hot_statement(statements: list[str]) -> None:
    # So that a store change that stops running one of them cannot pass here unchecked.
    expected = [
        "INDEXED BY runs_queue",
        "INDEXED BY runs_held",
        "INDEXED BY runs_owner",
        "INDEXED BY deliveries_due",
        "INDEXED BY deliveries_running",
        "UNION ALL",
        "(created_at, id) <",
        "(d.event_seq, d.id) <",
        "WHERE fanned_out = 0",
        "FROM steps WHERE run_id",
        "INSERT INTO steps",
        "FROM schedule_firings",
        "INDEXED BY runs_by_workflow_status",
        "INDEXED BY deliveries_by_status",
    ]
    joined = "\n".join(statements)
    assert [marker for marker in expected if marker not in joined] == []
    assert len(statements) > 40


@pytest.mark.parametrize("analyzed", [False, True], ids=["plain", "analyzed"])
async def test_no_statement_scans_or_sorts_the_history(
    statements: list[str], tmp_path: Path, analyzed: bool
) -> None:
    with sqlite3.connect(tmp_path / "plans.db") as db:
        if analyzed:
            add_history(db, 20_000)
        found = [f"{problem} <- {sql}" for sql in statements for problem in problems(db, sql)]
    assert found == []


async def test_the_live_indexes_hold_live_rows_only(tmp_path: Path) -> None:
    # The plan check lets a statement walk these whole; that is only safe while each
    # stays partial, over the rows of work in hand.
    await (await SqliteStore.open(str(tmp_path / "schema.db"))).close()
    with sqlite3.connect(tmp_path / "schema.db") as db:
        found = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
    for name, predicate in LIVE_INDEXES.items():
        assert " ".join(found[name].split()).endswith(f"WHERE {predicate}"), name


async def test_the_check_fails_on_a_scan_and_on_a_sort(tmp_path: Path) -> None:
    # The guard itself: it catches the statements this issue found in the store.
    await (await SqliteStore.open(str(tmp_path / "bad.db"))).close()
    bad = [
        # The old recovery query: the partial index's predicate not spelled literally.
        "SELECT id FROM runs WHERE status IN ('pending', 'running', 'sleeping', 'compensating')"
        " AND workflow IN ('a') AND (status IN ('running', 'compensating') OR available_at <= 'x')"
        " ORDER BY available_at LIMIT 5",
        # A sort over every run of two statuses, and over every step ever stored.
        "SELECT id FROM runs WHERE status IN ('failed', 'canceled') "
        "ORDER BY created_at DESC, id DESC LIMIT 5",
        "SELECT run_id FROM steps WHERE status = 'failed' ORDER BY ended_at DESC LIMIT 5",
        # A filter no index serves, with and without a limit.
        "SELECT d.id FROM deliveries d WHERE d.error IS NOT NULL",
        "SELECT id FROM events WHERE source_run_id = 'run_x' ORDER BY seq DESC LIMIT 5",
        # Forms a reviewer found slipping through an earlier version of the check.
        "SELECT r.id FROM runs r, steps s WHERE s.status = 'failed' AND s.run_id = r.id",
        "UPDATE OR IGNORE runs SET output = NULL WHERE output = 'x'",
        "SELECT status, COUNT(*) FROM runs GROUP BY status LIMIT 10",
        "UPDATE events SET fanned_out = 1 WHERE seq <= 1000000",
        "SELECT id FROM runs WHERE created_at < '2030' ORDER BY created_at DESC, id DESC",
    ]
    with sqlite3.connect(tmp_path / "bad.db") as db:
        assert [sql for sql in bad if not problems(db, sql)] == []
        fine = "SELECT id FROM runs WHERE status = 'failed' ORDER BY created_at DESC, id DESC"
        assert problems(db, f"{fine} LIMIT 5") == []
