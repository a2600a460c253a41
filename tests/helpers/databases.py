"""One database a multi-process test uses, on either backend, and plain ``SELECT``s on it.

The SIGKILL crash tests, the chaos campaign and the multi-process tests run their
processes on a database given by URL and judge what those processes committed by
reading the tables directly, the way an operator would. :class:`Database` hides the
two backends' differences for those reads: ``?`` placeholders on both (so no literal
``?`` or ``%`` in the SQL), times as the
SQLite store's UTC text (:func:`runtime.clock.to_text`) on both, JSON columns as text
on both, so one check reads the same values from either.

:func:`database` is the context manager a test gets its database from: a file in a
folder for ``sqlite``, a fresh schema (dropped afterwards) for ``postgresql``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.types.string import TextLoader

from runtime.clock import to_text
from tests.helpers import postgres

BACKENDS = ("sqlite", "postgresql")
"""The backends the multi-process tests run on (``pytest.mark.parametrize`` ids)."""


@dataclass(frozen=True)
class Database:
    """A database by URL, with read-only queries for the tests' checks.

    Attributes:
        backend: ``sqlite`` or ``postgresql``.
        url: what the processes under test are given (``--database``, ``RUNTIME_DATABASE``).
        file: the SQLite file (``None`` on PostgreSQL).
        schema: the PostgreSQL schema (``None`` on SQLite).
    """

    backend: str
    url: str
    file: Path | None = None
    schema: str | None = None

    @classmethod
    def at(cls, url: str) -> Database:
        """The database of a URL the processes under test are given.

        ``sqlite:///PATH`` or ``postgresql://...?schema=NAME`` (read on the test server,
        :data:`tests.helpers.postgres.SERVER`, as every PostgreSQL URL of the tests is).
        """
        if url.startswith("sqlite:///"):
            return cls("sqlite", url, file=Path(url.removeprefix("sqlite:///")))
        query = parse_qs(urlsplit(url).query)
        if not url.startswith("postgresql://") or len(query.get("schema", [])) != 1:
            raise ValueError(f"not a sqlite:/// or postgresql://...?schema= URL: {url!r}")
        return cls("postgresql", url, schema=query["schema"][0])

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of one ``SELECT`` (``?`` placeholders); ``[]`` before the tables exist."""
        if self.file is not None:
            return _sqlite_rows(self.file, sql, params)
        assert self.schema is not None
        return _postgres_rows(self.schema, sql, params)

    def scalar(self, sql: str, *params: Any) -> Any:
        """The one value of a one-row, one-column ``SELECT`` (``None`` before the tables exist)."""
        rows = self.query(sql, *params)
        return rows[0][0] if rows else None


def _sqlite_rows(file: Path, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if not file.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=10)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the first process has not created the schema yet
                return []
            raise


def _plain(value: Any) -> Any:
    """A PostgreSQL value as the SQLite store keeps it: times as UTC text."""
    if isinstance(value, datetime):
        return to_text(value.astimezone(UTC))
    return value


def _postgres_rows(schema: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with psycopg.connect(
        postgres.SERVER, connect_timeout=10, options=f"-c search_path={schema}"
    ) as conn:
        # json columns as the text the store wrote, like SQLite's TEXT columns.
        conn.adapters.register_loader("json", TextLoader)
        try:
            rows = conn.execute(sql.replace("?", "%s"), params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    return [tuple(_plain(v) for v in row) for row in rows]


@contextlib.contextmanager
def database(backend: str, folder: Path) -> Iterator[Database]:
    """A database no test used before: ``folder/runtime.db``, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        file = (folder / "runtime.db").resolve()
        yield Database(backend, f"sqlite:///{file}", file=file)
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}: expected one of {BACKENDS}")
    postgres.require_server()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield Database(backend, postgres.url(schema), schema=schema)
    finally:
        postgres.drop_schema(schema)
