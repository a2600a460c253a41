"""The SQLite store decodes rows by column name: each SELECT list yields the names it decodes by."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime.models import RunStatus
from runtime.store import rows, sqlite_retention, sqlite_tables
from runtime.store.pruning import PruneCutoffs
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_tables import RUNS, Select
from tests.helpers.records import T0, new_run

SOURCES = {
    "RUNS": "runs",
    "LEASE": "runs",
    "RUN_SNAPSHOT": "runs",
    "STEPS": "steps",
    "EVENTS": "events",
    "FAN_OUT": "events",
    "STAGED": "run_events",
    "DELIVERIES": "deliveries d JOIN events e ON e.id = d.event_id",
    "DELIVERY_WORK": "deliveries d JOIN events e ON e.id = d.event_id",
    "CANDIDATES": "deliveries",
    "SUBSCRIBERS": "subscribers",
    "ROUTES": "subscribers",
    "SCHEDULES": "schedules",
    "SCHEDULE_PLAN": "schedules",
    "SCHEDULE_SNAPSHOT": "schedules s LEFT JOIN runs r ON r.id = s.last_run_id",
    "FIRINGS": "schedule_firings",
    "WORKERS": "workers",
}
"""Each SELECT list of ``sqlite_tables`` and the FROM clause the store reads it with."""


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[sqlite3.Connection]:
    await (await SqliteStore.open(str(tmp_path / "tables.db"))).close()
    connection = sqlite3.connect(tmp_path / "tables.db")
    try:
        yield connection
    finally:
        connection.close()


def result_names(db: sqlite3.Connection, sql: str, params: Any = ()) -> tuple[str, ...]:
    """The names SQLite gives the result columns of ``sql``."""
    cursor = db.execute(sql, params)
    return tuple(column[0] for column in cursor.description)


def test_every_select_list_is_checked() -> None:
    lists = {name for name, value in vars(sqlite_tables).items() if isinstance(value, Select)}
    assert lists == set(SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
async def test_sqlite_names_each_column_as_its_select_list_does(
    db: sqlite3.Connection, name: str
) -> None:
    select: Select = getattr(sqlite_tables, name)
    assert result_names(db, f"SELECT {select.sql} FROM {SOURCES[name]} LIMIT 0") == select.names


def test_the_records_are_built_from_the_columns_the_tables_select() -> None:
    assert sqlite_tables.RUNS.names == rows.RUN_COLUMNS
    assert sqlite_tables.RUN_SNAPSHOT.names == rows.RUN_SNAPSHOT_COLUMNS
    assert sqlite_tables.STEPS.names == rows.STEP_COLUMNS
    assert sqlite_tables.EVENTS.names == rows.EVENT_COLUMNS
    assert sqlite_tables.DELIVERIES.names == rows.DELIVERY_COLUMNS
    assert sqlite_tables.DELIVERY_WORK.names == rows.DELIVERY_WORK_COLUMNS
    assert sqlite_tables.SUBSCRIBERS.names == rows.SUBSCRIBER_COLUMNS
    assert sqlite_tables.SCHEDULES.names == rows.SCHEDULE_COLUMNS
    assert sqlite_tables.SCHEDULE_PLAN.names == rows.SCHEDULE_PLAN_COLUMNS
    assert sqlite_tables.SCHEDULE_SNAPSHOT.names == rows.SCHEDULE_SNAPSHOT_COLUMNS
    assert sqlite_tables.FIRINGS.names == rows.FIRING_COLUMNS
    assert sqlite_tables.WORKERS.names == rows.WORKER_COLUMNS


async def test_the_retention_walks_name_their_columns_as_they_are_read(
    db: sqlite3.Connection,
) -> None:
    cutoffs = PruneCutoffs(completed=T0, failed=T0)
    params = {
        "completed": "",
        "failed": "",
        "upto": "",
        "limit": 1,
        "after_at": "",
        "after_key": 0,
    }
    walks = [
        (sqlite_retention._RUN_WALK, sql) for sql in sqlite_retention.run_walks(cutoffs).values()
    ]
    walks.append((sqlite_retention._EVENT_WALK, sqlite_retention.event_walk(cutoffs) or ""))
    walks.append((sqlite_retention._FIRING_WALK, sqlite_retention.FIRING_WALK))
    for columns, sql in walks:
        assert result_names(db, sql, params) == columns


async def test_a_run_decodes_the_same_whatever_order_its_columns_are_selected_in(
    tmp_path: Path,
) -> None:
    async with await SqliteStore.open(str(tmp_path / "order.db")) as store:
        record, _ = await store.create_run(
            new_run(status=RunStatus.RUNNING, owner="wrk_1", key="k")
        )
        assert record == await store.get_run(record.id, steps=False)
    backwards = Select(tuple(reversed(RUNS.names)))
    with sqlite3.connect(tmp_path / "order.db") as db:
        row = db.execute(f"SELECT {backwards.sql} FROM runs WHERE id = ?", (record.id,)).fetchone()
    assert rows.run_record(backwards.named(row)) == record
