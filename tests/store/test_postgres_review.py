"""Review findings on the PostgreSQL store's group commit, proved by failing tests.

anyio's shields do not stop ``task.cancel()`` (what ``asyncio.timeout`` and a web
framework cancelling a request do), so these cancel tasks the asyncio way, as
``test_sqlite_cancel`` does for the SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import psycopg
import pytest

from runtime import RunStatus
from runtime.store.changes import PROGRESS
from runtime.store.postgres import PostgresStore
from tests.helpers.postgres import fresh_schema
from tests.helpers.records import T0, create, step

pytestmark = pytest.mark.anyio


@pytest.fixture
async def opened() -> AsyncIterator[tuple[PostgresStore, str]]:
    async with fresh_schema() as url:
        schema = url.rpartition("schema=")[2]
        store = await PostgresStore.open(url.partition("?")[0], schema=schema)
        try:
            yield store, url
        finally:
            await store.close()


async def _lock_row(url: str, run_id: str) -> psycopg.AsyncConnection:
    """Another process holding ``run_id``'s row (say, an operator's request committing)."""
    schema = url.rpartition("schema=")[2]
    conn = await psycopg.AsyncConnection.connect(url.partition("?")[0], autocommit=False)
    await conn.execute(f"SELECT 1 FROM {schema}.runs WHERE id = %s FOR UPDATE", (run_id,))
    return conn


async def test_a_batch_whose_leader_asyncio_cancels_does_not_report_the_others_committed(
    opened: tuple[PostgresStore, str],
) -> None:
    """Bug: the leader's ``task.cancel()`` goes through the shield and aborts the batch's
    transaction; ``_commit``'s ``finally`` marks every checkpoint done with no error, so the
    followers return success for steps that were never written."""
    store, url = opened
    leader = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    follower = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    blocker = await _lock_row(url, leader)
    try:
        async with store._commit_lock:  # both queue, then one batch takes them
            lead = asyncio.ensure_future(
                store.checkpoint(leader, "wrk_a", [step(0, "lead")], PROGRESS, T0)
            )
            follow = asyncio.ensure_future(
                store.checkpoint(follower, "wrk_a", [step(0, "follow")], PROGRESS, T0)
            )
            await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # the batch waits for the leader's row lock
        lead.cancel()
        await anyio.sleep(0.1)
    finally:
        await blocker.rollback()
        await blocker.close()
    await asyncio.wait({lead}, timeout=10)
    assert lead.done(), "the leader hung"
    done, _ = await asyncio.wait({follow}, timeout=10)
    assert done, "the follower hung"
    outcome = follow.exception() if follow.exception() is not None else follow.result()
    written = [s.name for s in (await store.get_run(follower)).steps]
    # Either the follower's step is written, or the follower is told it was not.
    assert written == ["follow"] or isinstance(outcome, BaseException), (
        f"follower returned {outcome!r} but its steps are {written}"
    )


async def test_a_checkpoint_cancelled_while_queued_is_written_before_the_cancel_is_seen(
    opened: tuple[PostgresStore, str],
) -> None:
    """Bug: a checkpoint cancelled while it waited for the commit lock stayed in the
    queue, and the next batch (of any run, any time later) wrote it although its caller
    had been told it was cancelled. Now, as on SQLite (store writes are not cancel
    points), it is written, and only then does its caller see the cancellation."""
    store, _ = opened
    cancelled = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    async with store._commit_lock:
        task = asyncio.ensure_future(
            store.checkpoint(cancelled, "wrk_a", [step(0, "written")], PROGRESS, T0)
        )
        await anyio.sleep(0.05)
        task.cancel()
        await anyio.sleep(0.05)
        assert not task.done()  # it waits for its write, cancelled or not
    await asyncio.wait({task}, timeout=10)
    assert task.cancelled()
    assert [s.name for s in (await store.get_run(cancelled)).steps] == ["written"]
    assert store._queue == []  # nothing left for a later batch to write


async def test_a_pooled_connection_the_server_closed_when_idle_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug: a pooled connection the server closed for ``idle_session_timeout`` (SQLSTATE
    57P05, a FATAL that ends the session, as a DBA's setting or a proxy does) is not seen
    as a lost connection: the call fails instead of being retried on a new connection."""
    from runtime.store.postgres import connection, core

    original = connection.connection_kwargs

    def idle_timeout(schema: str) -> dict[str, object]:
        kwargs = original(schema)
        kwargs["options"] = f"{kwargs['options']} -c idle_session_timeout=200"
        return kwargs

    monkeypatch.setattr(core, "connection_kwargs", idle_timeout)
    async with fresh_schema() as url:
        schema = url.rpartition("schema=")[2]
        store = await PostgresStore.open(url.partition("?")[0], schema=schema)
        try:
            run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
            await anyio.sleep(0.6)  # every pooled connection is closed by the server now
            assert (await store.get_run(run_id, steps=False)).id == run_id
        finally:
            await store.close()
