"""tests/helpers/databases.py reads either backend's tables alike, or the checks built on it
would judge the two backends differently."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from runtime.clock import to_text
from tests.helpers import postgres
from tests.helpers.databases import BACKENDS, Database, database

AT = datetime(2026, 11, 30, 20, 8, 41, 123456, tzinfo=UTC)


def _create(db: Database) -> None:
    """One table as each store would write it: a time, a JSON document, a flag."""
    if db.file is not None:
        with sqlite3.connect(db.file) as conn:
            conn.execute("CREATE TABLE things (id TEXT, at TEXT, doc TEXT, flag INTEGER)")
            conn.execute(
                "INSERT INTO things VALUES (?, ?, ?, ?)", ("a", to_text(AT), '{"b": 1, "a": 2}', 0)
            )
        return
    with psycopg.connect(postgres.SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {db.schema}")
        conn.execute(
            f"CREATE TABLE {db.schema}.things (id text, at timestamptz, doc json, flag bool)"
        )
        conn.execute(
            f"INSERT INTO {db.schema}.things VALUES (%s, %s, %s, %s)",
            ("a", AT, '{"b": 1, "a": 2}', False),
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_read_alike(backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as db:
        assert Database.at(db.url) == db
        # Before the first process created the tables: nothing, not an error.
        assert db.query("SELECT id FROM things") == []
        _create(db)
        rows = db.query("SELECT id, at, doc FROM things WHERE id = ? AND NOT flag", "a")
        # Times as the SQLite store's UTC text, JSON as the text written (key order kept).
        assert rows == [("a", "2026-11-30T20:08:41.123456+00:00", '{"b": 1, "a": 2}')]
        assert db.scalar("SELECT count(*) FROM things WHERE at < ?", to_text(AT)) == 0
        assert db.scalar("SELECT count(*) FROM things WHERE at <= ?", to_text(AT)) == 1


def test_a_url_that_names_no_database_is_refused() -> None:
    with pytest.raises(ValueError, match="schema="):
        Database.at("postgresql://postgres@127.0.0.1:5432/test")
