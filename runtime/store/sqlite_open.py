"""Opening a SQLite file: the path checked, failures named, the file's identity kept.

Every way a database can be unusable (a NUL byte in its path, a folder that
cannot be created, a file that is not SQLite, is corrupt, read-only or locked)
becomes one :class:`~runtime.errors.StoreError` naming the file, never a raw
``sqlite3`` error. A store opened only to read never creates a file or a
folder. The store remembers which file it opened (device and inode), so a
service notices when that file is deleted or replaced under it, instead of
writing on into a file no other process can see.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import aiosqlite
import anyio
from aiosqlite.core import _STOP_RUNNING_SENTINEL

from runtime.errors import (
    DatabaseLockedError,
    DatabaseNotFoundError,
    DatabaseReplacedError,
    StoreError,
)
from runtime.store import sqlite_core
from runtime.store.sqlite_checkpoint import Checkpointer
from runtime.store.sqlite_connection import on_thread, open_fast

FileIdentity = tuple[int, int]
"""``(st_dev, st_ino)`` of a database file."""

MEMORY = ":memory:"

_READ_ONLY = "runtime writes to the file and to its folder (the -wal and -shm files)"


def check_path(path: str, *, create: bool) -> None:
    """Refuse a path that cannot hold a database; create its folder when ``create``.

    Raises:
        DatabaseNotFoundError: ``create`` is false and there is no file at ``path``.
        StoreError: a NUL byte, a folder that cannot be created, a folder at ``path``.
    """
    if "\x00" in path:
        raise StoreError(f"the database path {path!r} contains a NUL byte")
    if path == MEMORY:
        return
    file = Path(path)
    try:
        if create:
            file.parent.mkdir(parents=True, exist_ok=True)
        elif not file.exists():
            raise DatabaseNotFoundError(path)
        is_dir = file.is_dir()
        # SQLite opens a file it may not write read-only, and says so only at the first
        # write; a store that writes refuses it here, naming it.
        read_only = create and file.is_file() and not os.access(file, os.W_OK)
    except (FileExistsError, NotADirectoryError) as exc:
        in_the_way = (p for p in (file, *file.parents) if p.exists() and not p.is_dir())
        blocker = next(in_the_way, file.parent)
        raise StoreError(
            f"cannot create the folder {file.parent} for the database {path}: "
            f"{blocker} is a file, not a folder"
        ) from exc
    except OSError as exc:
        what = f"create the folder {file.parent} for" if create else "reach"
        raise StoreError(f"cannot {what} the database {path}: {exc.strerror or exc}") from exc
    if is_dir:
        raise StoreError(f"the database path {path} is a folder, not a file")
    if read_only:
        raise StoreError(f"the SQLite database {path} is read-only: {_READ_ONLY}")


class _Connection(aiosqlite.Connection):
    """aiosqlite's connection, made safe to forget.

    Its thread is a daemon, so a store nobody closed (a ``Client`` used without
    ``close()``) does not keep the process alive at exit: every write has been
    committed by then. And when it is garbage collected unclosed, it closes the
    SQLite connection on its thread without handing a result to an event loop:
    aiosqlite's own finalizer does, and prints "Event loop is closed" from the
    thread when ``asyncio.run`` has already closed that loop.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True

    def __del__(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._running = False

        def close_and_stop() -> object:
            connection.close()
            return _STOP_RUNNING_SENTINEL

        self._tx.put_nowait((None, close_and_stop))


async def connect(path: str, *, create: bool) -> aiosqlite.Connection:
    """An aiosqlite connection to ``path``; without ``create`` a missing file is not made.

    Raises:
        StoreError: SQLite cannot open the file (named, with the reason).
    """
    uri = not create and path != MEMORY
    target = f"file:{quote(path)}?mode=rw" if uri else path
    conn = _Connection(
        lambda: sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)
    )
    try:
        await conn
    except sqlite3.Error as exc:
        # aiosqlite stops its thread without waiting for it; a thread still running
        # when the event loop closes prints "Event loop is closed". Wait for it here.
        await anyio.to_thread.run_sync(conn._thread.join)
        raise open_error(path, exc) from exc
    return conn


async def open_companions(
    path: str, synchronous: str, fast: bool
) -> tuple[sqlite3.Connection | None, aiosqlite.Connection | None, Checkpointer | None]:
    """The connections a store opens besides its writer, once the file is migrated.

    The fast connection (only with ``synchronous=normal``), the reader and the
    checkpointer; none of them for a private in-memory database, which cannot be
    shared. See :class:`~runtime.store.sqlite_batch.GroupCommit` for why each exists.

    Raises:
        StoreError: SQLite cannot open the file (named, with the reason).
    """
    if path == MEMORY:
        return None, None, None
    reader: aiosqlite.Connection | None = None
    checkpointer: Checkpointer | None = None
    try:
        reader = await connect_reader(path)
        try:
            checkpointer = Checkpointer.open(path, synchronous)
            use_fast = fast and synchronous.lower() == "normal"
            return (open_fast(path) if use_fast else None), reader, checkpointer
        except sqlite3.Error as exc:
            raise open_error(path, exc) from exc
    except BaseException:
        if checkpointer is not None:
            checkpointer.close(final=False)  # it has not been woken: it ends at once
        if reader is not None:
            with anyio.CancelScope(shield=True):
                await reader.close()
        raise


async def connect_reader(path: str) -> aiosqlite.Connection:
    """The store's read connection to the database at ``path`` (opened and migrated).

    Its own thread, ``query_only``, the writer's busy timeout.

    Raises:
        StoreError: SQLite cannot open the file (named, with the reason).
    """
    conn = await connect(path, create=False)
    try:
        await on_thread(conn, _configure_reader)
    except sqlite3.Error as exc:
        await conn.close()
        raise open_error(path, exc) from exc
    except BaseException:
        await conn.close()
        raise
    return conn


def _configure_reader(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA busy_timeout = {sqlite_core.BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA query_only = 1")


def open_error(path: str, exc: sqlite3.Error) -> StoreError:
    """One message naming the file and what is wrong with it, for an error met on opening."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_NOTADB:
        return StoreError(f"{path} is not a SQLite database ({exc})")
    if code == sqlite3.SQLITE_CORRUPT:
        return StoreError(f"the SQLite database {path} is corrupt ({exc}); restore a backup")
    if code == sqlite3.SQLITE_READONLY:
        return StoreError(f"the SQLite database {path} is read-only ({exc}): {_READ_ONLY}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseLockedError("open", path, f"it is locked by another process ({exc})")
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        if not os.path.exists(path) and not Path(path).parent.is_dir():
            return DatabaseNotFoundError(path, "its folder does not exist")
        return StoreError(
            f"cannot open the SQLite database {path} ({exc}); the file and its folder must "
            "be readable and writable"
        )
    return StoreError(f"cannot use the SQLite database {path}: {exc}")


def needs_migration(db: sqlite3.Connection, path: str) -> bool:
    """Whether the runtime database at ``path`` has an older schema than this code's.

    Raises:
        DatabaseNotFoundError: the file is a SQLite database without runtime's tables.
    """
    db.execute(f"PRAGMA busy_timeout = {sqlite_core.BUSY_TIMEOUT_MS}")
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runtime_schema'"
    ).fetchone()
    if found is None:
        raise DatabaseNotFoundError(path, "the file holds no runtime tables")
    applied = {v for (v,) in db.execute("SELECT version FROM runtime_schema")}
    return any(version not in applied for version, _ in sqlite_core.migrations())


def identity(path: str) -> FileIdentity | None:
    """The identity of the file at ``path`` (``None`` for an in-memory database)."""
    if path == MEMORY:
        return None
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def opened_file(path: str) -> tuple[str, FileIdentity | None]:
    """The absolute path of a file just opened, and its identity (for :func:`check_identity`).

    Raises:
        DatabaseReplacedError: the file was deleted (or became unreachable) meanwhile.
    """
    try:
        return (path if path == MEMORY else os.path.abspath(path)), identity(path)
    except OSError as exc:
        raise DatabaseReplacedError(path, f"cannot be found any more ({exc.strerror})") from exc


def check_identity(path: str, opened: FileIdentity | None) -> None:
    """Raise if the file at ``path`` is no longer the one opened as ``opened``.

    Raises:
        DatabaseReplacedError: the file was deleted, or another file took its place.
    """
    if opened is None:
        return
    try:
        now = identity(path)
    except FileNotFoundError:
        raise DatabaseReplacedError(path, "was deleted") from None
    except OSError as exc:
        raise DatabaseReplacedError(path, f"cannot be found any more ({exc.strerror})") from exc
    if now != opened:
        raise DatabaseReplacedError(path, "was replaced by another file")


async def prepare(conn: aiosqlite.Connection, path: str, synchronous: str, create: bool) -> None:
    """Check, configure and migrate a newly opened database, waiting out a busy file.

    Two processes opening one new file at once (a service starting while a command
    emits) can meet SQLite's busy answers that its busy handler does not wait for (the
    switch to WAL mode, the WAL index being set up): each step here is idempotent, so
    the whole is tried again until the busy timeout has passed.
    """
    deadline = time.monotonic() + sqlite_core.BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            # A read never writes to a file that is not a runtime database.
            stale = create or await on_thread(conn, needs_migration, path)
            await on_thread(conn, sqlite_core._configure, synchronous, path)
            if stale:
                await on_thread(conn, sqlite_core._migrate, path)
            return
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            busy = code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        await anyio.sleep(0.02)
