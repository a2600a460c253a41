"""The SQLite store's machinery: the connections, schema migrations, reads.

Writes go through :class:`~runtime.store.sqlite_batch.GroupCommit` (the fast path
and group commit; its docstring says why they look the way they do).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib import resources
from typing import Any, TypeVar

import aiosqlite
import anyio

from runtime.errors import (
    RuntimeBaseError,
    SchemaVersionError,
    StoreClosedError,
    StoreError,
)
from runtime.store import sqlite_checkpoint
from runtime.store.sqlite_batch import GroupCommit
from runtime.store.sqlite_checkpoint import Checkpointer
from runtime.store.sqlite_connection import Decoding, on_thread, operation_of

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000

WATCH_INTERVAL = 0.02
"""Seconds between two reads of the file's version while waiting for another process's commit."""

QUEUED = "status IN ('pending', 'sleeping')"
"""The predicate of the ``runs_queue`` index, spelled as the queries must spell it."""
HELD = "status IN ('running', 'compensating')"
"""The predicate of the ``runs_held`` index."""

ARMS_MAX = 100
"""Keys asked about in one statement, one ``SELECT`` each joined by ``UNION ALL``
(SQLite refuses a compound of more than 500)."""


def in_chunks(keys: Sequence[str]) -> list[list[str]]:
    """``keys`` without repeats, in lists of at most ``ARMS_MAX``."""
    unique = list(dict.fromkeys(keys))
    return [unique[i : i + ARMS_MAX] for i in range(0, len(unique), ARMS_MAX)]


def newest_first(
    select: str,
    where: Sequence[str],
    params: Sequence[Any],
    statuses: Sequence[str] | None,
    column: str = "status",
) -> tuple[str, list[Any]]:
    """``select`` filtered by ``where`` and one of ``statuses``, for an ORDER BY after it.

    With several statuses it is one SELECT per status joined by UNION ALL: each walks
    its own (status, ...) index range in order and SQLite merges them, where a single
    ``status IN (...)`` would sort every row of those statuses to serve one page.
    """
    values = list(dict.fromkeys(statuses or ()))
    if not values:
        return _filtered(select, where), list(params)
    parts: list[str] = []
    out: list[Any] = []
    for value in values:
        parts.append(_filtered(select, [f"{column} = ?", *where]))
        out += [value, *params]
    return " UNION ALL ".join(parts), out


def _filtered(select: str, where: Sequence[str]) -> str:
    return f"{select} WHERE {' AND '.join(where)}" if where else select


def migrations() -> list[tuple[int, str]]:
    """The schema migrations shipped with this version, as (version, SQL)."""
    folder = resources.files("runtime.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


class SqliteCore(GroupCommit):
    """The connections, the group-commit write path and reads; the stores build on it.

    The connections and why each exists: see :class:`GroupCommit`.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: str,
        fast: sqlite3.Connection | None = None,
        *,
        reader: aiosqlite.Connection | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        super().__init__(conn, path, fast, checkpointer)
        self._reader = conn if reader is None else reader
        """The connection reads run on: its own, or the writer for an in-memory database."""
        self._version: int | None = None
        self._changes = 0

    async def close(self) -> None:
        reader, self._reader = self._reader, self._conn
        try:
            if reader is not self._conn:
                await reader.close()
        finally:
            await super().close()

    async def change_token(self) -> int:
        """A number that moves when another connection may have committed.

        It reads ``PRAGMA data_version``, which moves when a connection other than the
        one asked commits, never on the writer's thread: on the fast connection (on the
        loop's thread, no hop), which does not see its own commits, the common ones;
        else on the reader, which sees them all. A move that may have been this
        process's own commit (a queued one, or any without a fast connection) is
        reported all the same: the token is a hint that makes loops scan, and a missed
        commit of another process would leave them asleep. An in-memory database has
        no other connection: its token never moves.
        """
        if self._closed:
            raise StoreClosedError("change_token", self.path)
        fast = self._fast
        if fast is not None:
            try:
                version = fast.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                self._changes += 1  # cannot tell: report a change
                return self._changes
        elif self._reader is not self._conn:
            version = await self._read(lambda db: db.execute("PRAGMA data_version").fetchone()[0])
        else:
            return self._changes
        if version != self._version:
            if self._version is not None:
                self._changes += 1
            self._version = version
        return self._changes

    async def wait_change(self, token: int, timeout: float) -> int:
        """Poll :meth:`change_token` every ``WATCH_INTERVAL`` for up to ``timeout`` seconds.

        SQLite has no way to be told of another process's commit: its file's version
        is read (one cheap ``PRAGMA``) until it moves.
        """
        deadline = time.monotonic() + timeout
        while True:
            current = await self.change_token()
            left = deadline - time.monotonic()
            if current != token or left <= 0:
                return current
            await anyio.sleep(min(WATCH_INTERVAL, left))

    async def database_time(self) -> datetime | None:
        """``None``: a SQLite file has no clock; the host's is the only one."""
        if self._closed:
            raise StoreClosedError("database_time", self.path)
        return None

    async def _read(self, fn: Callable[[sqlite3.Connection], T], *, run_id: str | None = None) -> T:
        """Run ``fn`` on the reader's thread, in one read transaction (one snapshot).

        An error is raised as one of runtime's (see ``sqlite_connection.failure``);
        ``run_id`` names the run it was about.
        """
        try:
            return await on_thread(self._reader, _in_snapshot, fn)
        except RuntimeBaseError:
            raise
        except Exception as exc:
            raise self._failure(exc, operation_of(fn), run_id) from exc

    def _decoding(self, operation: str, run_id: str | None = None) -> Decoding:
        """``with self._decoding(...):`` around the decoding of a whole result of ``operation``."""
        return Decoding(operation, self.path, run_id)


def _in_snapshot(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(db)`` inside one read transaction, so its statements see one snapshot."""
    db.execute("BEGIN")
    try:
        return fn(db)
    finally:
        db.execute("COMMIT")


def _configure(db: sqlite3.Connection, synchronous: str, path: str = "") -> None:
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Refuse a newer schema before changing anything in the file (even its journal mode).
    has_schema = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runtime_schema'"
    ).fetchone()
    if has_schema:
        _check_version(db.execute("SELECT MAX(version) FROM runtime_schema").fetchone()[0], path)
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal" and db.execute("PRAGMA database_list").fetchone()[2]:
        raise StoreError(f"could not switch the database to WAL mode (got {mode})")
    db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    # The checkpointer checkpoints (runtime.store.sqlite_checkpoint); a writer cuts the
    # WAL file back when it starts the WAL over.
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute(f"PRAGMA journal_size_limit = {sqlite_checkpoint.WAL_KEEP}")


def _migrate(db: sqlite3.Connection, path: str) -> None:
    known = migrations()
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS runtime_schema (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) FROM runtime_schema").fetchone()
        _check_version(row[0] or 0, path)
        applied = {v for (v,) in db.execute("SELECT version FROM runtime_schema")}
        # Every migration not applied yet, not only those above the highest applied:
        # migrations written on parallel branches may land out of numbering order.
        for version, sql in known:
            if version not in applied:
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute("INSERT INTO runtime_schema (version) VALUES (?)", (version,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _check_version(current: int | None, path: str) -> None:
    latest = migrations()[-1][0]
    if current is not None and current > latest:
        raise SchemaVersionError(
            f"database {path} has schema version {current}, newer than this runtime "
            f"knows ({latest}); upgrade runtime rather than risk writing an unknown schema"
        )


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def baseline_commit_us(path: str, count: int = 1000) -> float:
    """Microseconds per insert-and-commit through aiosqlite's plain statement API.

    The benchmark's yardstick: one row per transaction, WAL, the same pragmas as the
    store, so a checkpoint's cost can be reported as a ratio to it.
    """
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await on_thread(db, _configure, "normal")
        await db.execute("CREATE TABLE IF NOT EXISTS baseline (id INTEGER PRIMARY KEY, v TEXT)")
        started = time.perf_counter()
        for i in range(count):
            await db.execute("BEGIN IMMEDIATE")
            await db.execute("INSERT INTO baseline (v) VALUES (?)", (str(i),))
            await db.execute("COMMIT")
        return (time.perf_counter() - started) / count * 1e6
