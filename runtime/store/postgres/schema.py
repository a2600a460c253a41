"""The PostgreSQL store's schema: created and migrated on first use, once however many start.

The tables live in their own schema (``runtime`` unless the URL names another). A
process that opens the store takes a transaction-scoped advisory lock keyed by the
schema's name, then creates the schema and applies the migrations it lacks, in that
one transaction: processes that start together wait for the first, then find nothing
to do. A database whose schema is newer than this runtime knows is refused before
anything is written.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg

from runtime.errors import SchemaVersionError

SCHEMA_TABLE = "runtime_schema"


def migrations() -> list[tuple[int, str]]:
    """The PostgreSQL migrations shipped with this version, as (version, SQL)."""
    folder = resources.files("runtime.store.postgres") / "migrations"
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


async def schema_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int | None:
    """The version of the schema's tables, or ``None`` when runtime has no tables there."""
    cur = await conn.execute("SELECT to_regclass(%s) AS present", (f"{schema}.{SCHEMA_TABLE}",))
    row = await cur.fetchone()
    if row is None or row["present"] is None:
        return None
    cur = await conn.execute(f"SELECT MAX(version) AS version FROM {schema}.{SCHEMA_TABLE}")
    row = await cur.fetchone()
    return None if row is None else row["version"]


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str, where: str) -> None:
    """Create ``schema`` and apply every migration it lacks, under the advisory lock.

    Raises:
        SchemaVersionError: the schema was written by a newer runtime.
    """
    known = migrations()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"runtime:{schema}",))
        current = await schema_version(conn, schema)
        check_version(current, where)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.{SCHEMA_TABLE} (version integer NOT NULL)"
        )
        cur = await conn.execute(f"SELECT version FROM {schema}.{SCHEMA_TABLE}")
        applied = {row["version"] for row in await cur.fetchall()}
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        for version, sql in known:
            if version not in applied:
                await conn.execute(sql.encode())
                await conn.execute(
                    f"INSERT INTO {schema}.{SCHEMA_TABLE} (version) VALUES (%s)", (version,)
                )


def check_version(current: int | None, where: str) -> None:
    """Refuse a schema newer than this runtime's migrations."""
    latest = migrations()[-1][0]
    if current is not None and current > latest:
        raise SchemaVersionError(
            f"database {where} has schema version {current}, newer than this runtime "
            f"knows ({latest}); upgrade runtime rather than risk writing an unknown schema"
        )
