"""Random payloads and arguments through ``SyncClient``: accepted and read back equal, or a
clear error from runtime's exception tree with no row stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import SyncClient
from runtime.errors import RuntimeBaseError
from tests.properties.strategies import FAST, json_ish, storable

names = st.one_of(st.sampled_from(["hello", "order.placed"]), st.text(max_size=10))
anything = st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.binary(max_size=3))
delays = st.one_of(
    st.none(),
    st.floats(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=999)),
    st.text(max_size=3),
)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client") / "runtime.db"


@pytest.fixture(scope="module")
def client(database: Path) -> Iterator[SyncClient]:
    with SyncClient(f"sqlite:///{database}") as client:
        client.list_runs()  # creates the schema
        yield client


def rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def same(value: Any, back: Any) -> bool:
    """Equal once through JSON (tuples are lists; -0.0 equals 0.0)."""
    return json.dumps(value, sort_keys=True) == json.dumps(back, sort_keys=True)


@FAST
@given(name=names, data=json_ish, metadata=st.one_of(st.none(), json_ish), delay=delays)
def test_emit(
    client: SyncClient, database: Path, name: str, data: Any, metadata: Any, delay: Any
) -> None:
    before = rows(database, "events")
    try:
        event_id = client.emit(name, data, metadata=metadata, delay=delay)
    except RuntimeBaseError:
        assert rows(database, "events") == before
        return
    assert storable(data) and (metadata is None or storable(metadata))
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT data FROM events WHERE id = ?", (event_id,)).fetchone()[0]
    assert same(data, json.loads(stored))


@FAST
@given(
    workflow=st.one_of(names, anything),
    input=json_ish,
    delay=delays,
    key=st.one_of(st.none(), st.text(max_size=5), anything),
)
def test_run(
    client: SyncClient, database: Path, workflow: Any, input: Any, delay: Any, key: Any
) -> None:
    before = rows(database, "runs")
    options: dict[str, Any] = {"idempotency_key": key}
    if delay is not None:
        options["delay"] = delay
    try:
        handle = client.run(workflow, input, **options)
    except RuntimeBaseError:
        assert rows(database, "runs") == before
        return
    assert isinstance(workflow, str) and workflow.strip() and storable(input)
    assert same(input, client.get_run(handle.run_id).input)


@FAST
@given(
    status=st.one_of(
        st.none(),
        st.lists(
            st.one_of(st.sampled_from(["failed", "pending"]), st.text(max_size=4), anything),
            max_size=2,
        ),
    ),
    limit=st.one_of(st.integers(min_value=-5, max_value=20_000), anything),
    workflow=st.one_of(st.none(), names, anything),
)
def test_list_runs(client: SyncClient, status: Any, limit: Any, workflow: Any) -> None:
    try:
        page = client.list_runs(status=status, limit=limit, workflow=workflow)
    except RuntimeBaseError:
        return
    assert isinstance(limit, int) and 1 <= limit <= 10_000 and len(page.runs) <= limit
