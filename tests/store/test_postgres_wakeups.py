"""The PostgreSQL store's wake-ups: a process is woken by the others' commits, not by its
own (its loops are woken directly, as on SQLite), so a run that ends here does not send
this process's worker and dispatcher scanning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from runtime.store.postgres import PostgresStore
from tests.helpers.postgres import fresh_schema
from tests.store.bus import event


@pytest.fixture
async def stores() -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    async with fresh_schema() as url:
        base, _, schema = url.partition("?schema=")
        here = await PostgresStore.open(base, schema=schema)
        there = await PostgresStore.open(base, schema=schema)
        try:
            yield here, there
        finally:
            await here.close()
            await there.close()


async def test_a_store_is_woken_by_another_not_by_itself(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    here, there = stores
    token = await here.change_token()
    await here.emit(event("user.created"))
    assert await here.change_token() == token  # its own commit
    assert await here.wait_change(token, 0.2) == token
    await there.emit(event("user.created"))
    assert await here.wait_change(token, 10) != token  # another's


async def test_the_database_time_is_the_servers(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    here, _ = stores
    server = await here.database_time()
    assert server is not None
    assert abs((server - datetime.now(UTC)).total_seconds()) < 60  # same host here
