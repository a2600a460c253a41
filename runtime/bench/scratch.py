"""Where ``runtime bench --database postgresql://...`` measures: scratch schemas, dropped after.

The benchmark never touches the schema a project uses (``runtime`` unless the URL
names another): every measurement gets a schema of its own, named
``runtime_bench_<random>_<label>``, in the database the URL names, and every one of
them is dropped when the benchmark ends, whether it finished, failed or was
interrupted (Ctrl-C raises ``KeyboardInterrupt`` through the ``with``). A process
killed outright (SIGKILL) leaves its schemas behind: their names say what they are.

The URL is only ever shown through :func:`runtime.config.redact`: its password is
never printed.

:func:`baseline_commit_us` is PostgreSQL's yardstick, as SQLite's is one plain
commit: one ``INSERT`` in its own transaction (``BEGIN``, ``INSERT``, ``COMMIT``)
over the connection the store uses (psycopg's async connection, same options), so
a step's cost can be read as a number of commits.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from runtime.config import SCHEMA_NAME, parse_database_url, redact
from runtime.errors import ConfigError, StoreError
from runtime.store.postgres.connection import CONNECT_TIMEOUT, connection_kwargs

PREFIX = "runtime_bench_"


class Scratch:
    """Scratch schemas on one PostgreSQL database, each made on first use of its URL."""

    def __init__(self, url: str) -> None:
        parsed = parse_database_url(url)
        if parsed.scheme != "postgresql":
            raise ConfigError(f"--database {redact(url)}: not a postgresql:// URL")
        self.shown = redact(url)
        """The URL as it may be printed (no password)."""
        self.conninfo = parsed.path
        """The libpq URL, without runtime's own options."""
        self.prefix = f"{PREFIX}{secrets.token_hex(6)}"
        self.schemas: list[str] = []
        """Every schema handed out so far (each dropped by :meth:`drop`)."""

    def schema(self, label: str) -> str:
        """A new schema name for the measurement ``label`` (made once per label)."""
        name = f"{self.prefix}_{label}"
        if not SCHEMA_NAME.fullmatch(name):
            raise ValueError(f"scratch schema label {label!r} does not make a schema name")
        if name in self.schemas:
            raise ValueError(f"scratch schema {name} was handed out already")
        self.schemas.append(name)
        return name

    def url(self, label: str) -> str:
        """A runtime URL whose tables live in a new scratch schema for ``label``."""
        joiner = "&" if "?" in self.conninfo else "?"
        return f"{self.conninfo}{joiner}schema={self.schema(label)}"

    def drop(self) -> None:
        """Drop every scratch schema handed out (those never created are no matter)."""
        if not self.schemas:
            return
        try:
            with psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            ) as db:
                for name in self.schemas:
                    db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        except psycopg.Error as exc:
            raise StoreError(
                f"{self.shown}: the benchmark's scratch schemas {self.prefix}_* could not be "
                f"dropped ({type(exc).__name__}: {str(exc).strip()}); drop them by hand: "
                + "; ".join(f"DROP SCHEMA IF EXISTS {name} CASCADE" for name in self.schemas)
            ) from exc
        self.schemas.clear()


@contextmanager
def scratch(url: str) -> Iterator[Scratch]:
    """A :class:`Scratch` on ``url``'s database whose schemas are dropped on the way out."""
    area = Scratch(url)
    try:
        yield area
    finally:
        area.drop()


def leftover_schemas(conninfo: str, prefix: str = PREFIX) -> list[str]:
    """Schemas whose name starts with ``prefix`` (what a benchmark left behind)."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as db:
        rows = db.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY nspname",
            (prefix,),
        ).fetchall()
    return [row[0] for row in rows]


async def baseline_commit_us(area: Scratch, count: int = 1000) -> float:
    """Microseconds per ``BEGIN; INSERT; COMMIT`` of one row over an async connection.

    The connection is opened as the store opens its own (same options, in a scratch
    schema of its own), and each row is one transaction, as a lone checkpoint is.
    """
    schema = area.schema("baseline")
    kwargs = connection_kwargs(schema)
    conn = await psycopg.AsyncConnection.connect(area.conninfo, **kwargs)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute("CREATE TABLE baseline (id bigserial PRIMARY KEY, v text)")
        started = time.perf_counter()
        for i in range(count):
            async with conn.transaction():
                await conn.execute("INSERT INTO baseline (v) VALUES (%s)", (str(i),))
        return (time.perf_counter() - started) / count * 1e6
    finally:
        await conn.close()
