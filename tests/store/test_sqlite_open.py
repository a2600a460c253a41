"""Opening a SQLite store: a read never creates; the file it opened is the file it checks."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from runtime import DatabaseLockedError, DatabaseNotFoundError, DatabaseReplacedError
from runtime.store import sqlite_core
from runtime.store.sqlite import SqliteStore


async def test_open_without_create_makes_no_file_and_no_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "app.db"
    with pytest.raises(DatabaseNotFoundError) as caught:
        await SqliteStore.open(str(path), create=False)
    # The CLI adds where the path came from (--database ...); a library caller has no such
    # settings, and the message named them before.
    assert str(caught.value) == f"no runtime database at {path}: there is no such file"
    assert not path.parent.exists()
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()  # an empty file: SQLite, but not runtime's
    with pytest.raises(DatabaseNotFoundError, match="holds no runtime tables"):
        await SqliteStore.open(str(other), create=False)
    assert other.stat().st_size == 0


async def test_open_without_create_reads_an_existing_database(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    await (await SqliteStore.open(path)).close()
    async with await SqliteStore.open(path, create=False) as store:
        assert (await store.list_runs()).runs == []


@pytest.mark.parametrize("change", ["delete", "replace"])
async def test_check_file_notices_a_deleted_or_replaced_file(tmp_path: Path, change: str) -> None:
    path = tmp_path / "app.db"
    async with await SqliteStore.open(str(path)) as store:
        await store.check_file()
        if change == "delete":
            path.unlink()
        else:
            sqlite3.connect(tmp_path / "new.db").close()
            os.replace(tmp_path / "new.db", path)
        with pytest.raises(DatabaseReplacedError, match=str(path)) as exc:
            await store.check_file()
        assert exc.value.path == str(path)


async def test_an_in_memory_database_has_no_file_to_check() -> None:
    async with await SqliteStore.open(":memory:") as store:
        await store.check_file()


def _busy() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY
    return error


async def test_a_busy_answer_while_opening_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes opening one new file at once can get SQLITE_BUSY where SQLite's busy
    handler does not wait (switching to WAL, setting up the WAL index): seen once as a
    command failing with 'is locked' while a service started. The opening is tried again
    until the busy timeout has passed."""
    real = sqlite_core._configure
    answers = [_busy(), _busy()]

    def configure(db: sqlite3.Connection, synchronous: str, path: str = "") -> None:
        if answers:
            raise answers.pop()
        real(db, synchronous, path)

    monkeypatch.setattr(sqlite_core, "_configure", configure)
    store = await SqliteStore.open(str(tmp_path / "app.db"))
    await store.close()
    assert answers == []


async def test_a_file_that_stays_busy_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def configure(db: sqlite3.Connection, synchronous: str, path: str = "") -> None:
        raise _busy()

    monkeypatch.setattr(sqlite_core, "_configure", configure)
    monkeypatch.setattr(sqlite_core, "BUSY_TIMEOUT_MS", 100)
    with pytest.raises(DatabaseLockedError, match="is locked by another process") as caught:
        await SqliteStore.open(str(tmp_path / "app.db"))
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.operation == "open"
