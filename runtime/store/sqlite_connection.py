"""The SQLite store's connection layer: work on a connection's thread, errors translated.

Every exception from below the store (``sqlite3``'s, aiosqlite's ``ValueError`` on a
closed connection, a stored row that fails to decode) reaches a store method's caller
as one error of runtime's tree (:func:`failure`), with the original as its ``__cause__``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

from runtime.errors import (
    CorruptRecordError,
    DatabaseLockedError,
    RuntimeBaseError,
    StoreClosedError,
    StoreOperationError,
)
from runtime.store import sqlite_checkpoint

T = TypeVar("T")


async def on_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(sqlite3_connection, *args)`` on aiosqlite's connection thread, in one hop.

    ``Connection._execute`` is aiosqlite's own way of queueing work on that thread
    (its public methods are built on it); the pinned version keeps it stable.
    """
    result = await conn._execute(fn, conn._conn, *args)  # type: ignore[no-untyped-call]
    return result  # type: ignore[no-any-return]


def open_fast(path: str) -> sqlite3.Connection:
    """The fast-path connection: never waits for the lock, never checkpoints."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 0")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute(f"PRAGMA journal_size_limit = {sqlite_checkpoint.WAL_KEEP}")
    return db


def failure(
    exc: Exception, operation: str, path: str, run_id: str | None = None, *, closed: bool = False
) -> StoreOperationError:
    """The error a store method raises, ``from exc``, for an exception not of runtime's tree.

    The one translation of the connection layer's exceptions, made where each path
    (a write, a read, the decoding of what a read returned) meets them; runtime's
    own errors (a lease lost, a run not found) pass those places as they are:

    - on a closed store: :class:`~runtime.errors.StoreClosedError` (aiosqlite says
      ``ValueError: no active connection``);
    - a ``sqlite3.Error``: :class:`~runtime.errors.DatabaseLockedError` for a lock
      held past the busy timeout, else :class:`~runtime.errors.StoreOperationError`
      (disk I/O, a read-only file, a constraint, a corrupt page);
    - a ``ValueError`` or ``TypeError`` (bad JSON, an unknown status, a bad time):
      :class:`~runtime.errors.CorruptRecordError`, a stored row that cannot be decoded;
    - anything else: a :class:`~runtime.errors.StoreOperationError` naming its type.
    """
    if closed:
        return StoreClosedError(operation, path, run_id)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return DatabaseLockedError(operation, path, detail, run_id)
        return StoreOperationError(operation, path, detail, run_id)
    if isinstance(exc, ValueError | TypeError):
        detail = f"a stored record cannot be decoded ({detail})"
        return CorruptRecordError(operation, path, detail, run_id)
    return StoreOperationError(operation, path, detail, run_id)


class Decoding:
    """Around the decoding of what a read returned: a bad row raises a ``CorruptRecordError``.

    Entered once per result, never per row; a plain class rather than a generator
    context manager, at a quarter of the cost, since hot reads (a claim, a run) enter it.
    """

    __slots__ = ("operation", "path", "run_id")

    def __init__(self, operation: str, path: str, run_id: str | None = None) -> None:
        self.operation = operation
        self.path = path
        self.run_id = run_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, RuntimeBaseError):
            raise failure(exc, self.operation, self.path, self.run_id) from exc


def operation_of(fn: Callable[..., Any]) -> str:
    """The store method a write or read function belongs to, named in its errors.

    Every such function is a closure (or lambda) of the method it serves, so its
    qualified name says which: ``SqliteStore.checkpoint.<locals>.write`` is
    ``checkpoint``. Only called on the way to raising.
    """
    qualname: str = getattr(fn, "__qualname__", "") or repr(fn)
    return qualname.partition(".<locals>")[0].rpartition(".")[2]
