"""``Runtime``, ``Client`` and ``SyncClient`` on a database they cannot use: a ``StoreError``.

Never a raw ``sqlite3`` error, and always naming the file, so application code
can catch the runtime's own exception tree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import Client, Runtime, StoreError, SyncClient


def not_sqlite(folder: Path) -> tuple[str, str]:
    (folder / "notes.db").write_text("plain text\n" * 500)
    return f"sqlite:///{folder / 'notes.db'}", "is not a SQLite database"


def corrupt(folder: Path) -> tuple[str, str]:
    db = sqlite3.connect(folder / "bad.db")
    db.execute("CREATE TABLE t (x TEXT)")
    db.commit()
    db.close()
    with (folder / "bad.db").open("r+b") as file:
        file.seek(100)
        file.write(b"\xff" * 400)
    return f"sqlite:///{folder / 'bad.db'}", "is corrupt"


def nul_byte(folder: Path) -> tuple[str, str]:
    return f"sqlite:///{folder / 'a'}\x00.db", "NUL byte"


def file_in_the_way(folder: Path) -> tuple[str, str]:
    (folder / "file").write_text("not a folder\n")
    return f"sqlite:///{folder / 'file' / 'sub' / 'x.db'}", "is a file, not a folder"


def under_proc(folder: Path) -> tuple[str, str]:
    return "sqlite:////proc/runtime-test.db", "cannot open the SQLite database /proc/"


CASES = [not_sqlite, corrupt, nul_byte, file_in_the_way, under_proc]
IDS = ["not-sqlite", "corrupt", "nul-byte", "file-in-the-way", "under-proc"]


def check(exc: pytest.ExceptionInfo[StoreError], words: str) -> None:
    assert words in str(exc.value)
    assert not isinstance(exc.value, sqlite3.Error)


@pytest.mark.parametrize("make", CASES, ids=IDS)
async def test_runtime_raises_a_store_error(
    tmp_path: Path, make: Callable[[Path], tuple[str, str]]
) -> None:
    url, words = make(tmp_path)
    with pytest.raises(StoreError) as exc:
        async with Runtime(database=url):
            pass
    check(exc, words)


@pytest.mark.parametrize("make", CASES, ids=IDS)
async def test_client_raises_a_store_error(
    tmp_path: Path, make: Callable[[Path], tuple[str, str]]
) -> None:
    url, words = make(tmp_path)
    client = Client(url)
    with pytest.raises(StoreError) as exc:
        await client.emit("order.placed", {"id": 1})
    check(exc, words)
    await client.close()


@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_sync_client_raises_a_store_error(
    tmp_path: Path, make: Callable[[Path], tuple[str, str]]
) -> None:
    url, words = make(tmp_path)
    with SyncClient(url) as client, pytest.raises(StoreError) as exc:
        client.emit("order.placed", {"id": 1})
    check(exc, words)
