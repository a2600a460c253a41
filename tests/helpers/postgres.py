"""The test PostgreSQL server: its URL, whether it answers, and a fresh schema per test.

The server is ``RUNTIME_TEST_POSTGRES`` (default: the one this project's machines run,
``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Each test gets a schema of
its own, dropped afterwards, so tests never see each other's rows. Locally, a test that
needs the server is skipped, saying why, when nothing answers; under CI (``CI`` set)
it fails instead, so the PostgreSQL tests can never be skipped there unnoticed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache

import psycopg
import pytest

SERVER = os.environ.get("RUNTIME_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@cache
def unreachable() -> str | None:
    """Why the test server cannot be used, or ``None`` when it answers."""
    try:
        with psycopg.connect(SERVER, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at {SERVER} ({str(exc).strip()})"
    return None


def require_server() -> None:
    """Skip (locally) or fail (under CI) when the test server does not answer."""
    reason = unreachable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(reason)


def url(schema: str) -> str:
    """The test server's URL with runtime's tables in ``schema``."""
    joiner = "&" if "?" in SERVER else "?"
    return f"{SERVER}{joiner}schema={schema}"


def drop_schema(schema: str) -> None:
    """Drop ``schema`` and everything in it (nothing when it does not exist)."""
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def new_schema() -> Iterator[str]:
    """The URL of a schema no test used before; dropped on exit (for synchronous fixtures)."""
    require_server()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield url(schema)
    finally:
        drop_schema(schema)


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """The URL of a schema no test used before; dropped on exit."""
    with new_schema() as schema_url:
        yield schema_url
