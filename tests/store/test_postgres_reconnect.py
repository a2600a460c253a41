"""The PostgreSQL store keeps working when its connections are cut (a restart, a failover):
each call is retried on a new connection, and nothing committed is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from structlog.testing import capture_logs

from runtime import RunStatus
from runtime.store.changes import PROGRESS, Complete
from runtime.store.postgres import PostgresStore
from tests.helpers.postgres import SERVER, fresh_schema
from tests.helpers.records import T0, create, step


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with fresh_schema() as url:
        schema = url.rpartition("schema=")[2]
        opened = await PostgresStore.open(url.partition("?")[0], schema=schema)
        try:
            yield opened
        finally:
            await opened.close()


def cut_connections(store: PostgresStore) -> int:
    """Terminate every server process serving ``store`` (as a restart does); how many."""
    with psycopg.connect(SERVER, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"runtime:{store.schema}",),
        ).fetchall()
    return len(rows)


async def test_calls_after_the_connections_were_cut_are_retried(store: PostgresStore) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(0, "first")], PROGRESS, T0)
    token = await store.change_token()  # opens the listening connection too
    assert cut_connections(store) >= 2
    with capture_logs() as logs:
        # Every kind of call: a checkpoint (group commit), a read, a plain write.
        await store.checkpoint(run_id, "wrk_a", [step(1, "second")], PROGRESS, T0)
        record = await store.get_run(run_id)
        await store.checkpoint(run_id, "wrk_a", [], Complete('"done"', T0), T0)
    assert [s.name for s in record.steps] == ["first", "second"]
    assert (await store.get_run(run_id)).status is RunStatus.COMPLETED
    events = [entry["event"] for entry in logs]
    assert "database_unreachable" in events
    assert "database_reachable" in events
    # The listening connection is opened again, and its loss reported as a change.
    assert await store.change_token() != token
