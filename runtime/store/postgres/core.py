"""The PostgreSQL store's machinery: the pool, one transaction per call, retries, wake-ups.

- :meth:`PgCore._run` runs a function of the store's in one transaction on a pooled
  connection. A connection lost before the transaction's end (PostgreSQL restarted, a
  failover) is retried on a new connection with backoff, for up to ``RECONNECT_FOR``
  seconds, and logged (``database_unreachable``, ``database_reachable``). A
  connection lost during the commit itself is not retried, since the commit may have
  happened: the caller gets a ``StoreOperationError``, as it would for a failed write,
  and the engine's own recovery (a lease, a redelivery) takes it from there.
- Wake-ups across processes: a write that another process may be waiting for (a new
  run, an event, deliveries, a run that ended) sends ``NOTIFY`` on the schema's
  channel in its own transaction, so the notification goes out only if it committed.
  :meth:`PgCore.change_token` counts the notifications a listening connection has
  received; :meth:`PgCore.wait_change` waits for the next one. A notification is a
  hint that makes loops look, never the record: the loops also poll.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from runtime.config import secrets_of
from runtime.errors import CommitUncertainError, RuntimeBaseError, StoreClosedError
from runtime.retry import backoff
from runtime.store.postgres.connection import (
    Decoding,
    configure,
    connection_kwargs,
    failure,
    is_disconnect,
    scrub,
)

logger = structlog.get_logger("runtime.store")

T = TypeVar("T")
Cursor = psycopg.AsyncCursor[dict[str, Any]]
Body = Callable[[Cursor], Awaitable[T]]

RECONNECT_FOR = 60.0
"""Seconds a call keeps retrying a lost connection before it fails."""

RECONNECT_INTERVAL = 0.05
"""The first wait before reconnecting; it doubles (with jitter) up to ``RECONNECT_CAP``."""

RECONNECT_CAP = 2.0
"""The longest wait between two reconnection attempts."""

SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
"""A read of several statements sees one snapshot."""

ACQUIRE_TIMEOUT = 5.0
"""Seconds an attempt waits for a pooled connection (the server unreachable: the pool
cannot open one) before it counts as failed and is retried after a cancellable wait."""

POOL_MIN = 2
POOL_MAX = 10
"""Connections per store: a process's concurrent reads and writes share them."""


class _Uncertain(Exception):
    """The connection was lost while committing: the transaction may or may not have committed."""


class PgCore:
    """The pool, the transaction runner and the notification listener the stores build on."""

    def __init__(self, pool: AsyncConnectionPool[Any], conninfo: str, schema: str, where: str):
        self._pool = pool
        self._conninfo = conninfo
        self.schema = schema
        self.path = where
        """What errors name as the database: the URL without its password, and the schema."""
        self.channel = f"runtime_{schema}"
        """The ``NOTIFY`` channel of this schema's wake-ups."""
        self.origin = os.urandom(8).hex()
        """This store's mark on its wake-ups."""
        self._closed = False
        self._changes = 0
        self._changed = anyio.Event()
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._listening = anyio.Lock()
        self._unreachable_since: float | None = None
        self._secrets = secrets_of(conninfo)
        """The URL's password, scrubbed from every message the driver gives."""

    # -- transactions -----------------------------------------------------

    async def _run(
        self,
        body: Body[T],
        operation: str,
        *,
        run_id: str | None = None,
        read_only: bool = False,
        single: bool = False,
        idempotent: bool = False,
    ) -> T:
        """``body(cursor)`` in one transaction; its result once committed.

        Args:
            read_only: the body only reads; with several statements they see one
                snapshot (``REPEATABLE READ``).
            single: the body runs exactly one statement, so it runs without ``BEGIN``
                and ``COMMIT`` (autocommit): one round trip instead of three. Such a
                write whose connection is lost may have committed; it is retried only
                if ``idempotent``, else reported as an uncertain commit is.
            idempotent: running the body twice does what running it once did.

        Errors of runtime's tree raised by ``body`` (a lease lost, a run not found)
        roll the transaction back and pass through; psycopg's are translated
        (:func:`~runtime.store.postgres.connection.failure`).

        Each attempt is shielded from cancellation, as the SQLite store's writes are
        ("store writes are not cancel points", which the engine relies on): a call
        finishes its attempt (bounded by ``ACQUIRE_TIMEOUT``, the lock timeout and the
        connection's keepalives), so a write is never half known to its caller and no
        connection is thrown away mid-query. A caller cancelled meanwhile sees the
        cancellation at its next checkpoint; the waits between attempts (the server
        unreachable) are cancellable, as nothing was written.
        """
        failures = 0
        started = time.monotonic()
        while True:
            if self._closed:
                raise StoreClosedError(operation, self.path, run_id)
            try:
                result = await self._once(body, read_only, single, idempotent)
            except RuntimeBaseError:
                raise
            except _Uncertain as lost:
                cause = lost.__cause__ if isinstance(lost.__cause__, Exception) else lost
                said = scrub(f"{type(cause).__name__}: {str(cause).strip()}", self._secrets)
                detail = f"the connection was lost while committing ({said}); "
                detail += "the write may or may not have happened"
                raise CommitUncertainError(operation, self.path, detail, run_id) from cause
            except (PoolClosed, PoolTimeout, Exception) as exc:
                retry = isinstance(exc, PoolTimeout) or is_disconnect(exc)
                if not retry or self._closed or time.monotonic() - started > RECONNECT_FOR:
                    raise self._failure(exc, operation, run_id) from exc
                failures += 1
                self._lost(exc)
                await anyio.sleep(backoff(failures, RECONNECT_INTERVAL, RECONNECT_CAP))
                continue
            if self._unreachable_since is not None:
                down = time.monotonic() - self._unreachable_since
                self._unreachable_since = None
                logger.warning("database_reachable", database=self.path, after=round(down, 3))
            return result

    async def _once(self, body: Body[T], read_only: bool, single: bool, idempotent: bool) -> T:
        with anyio.CancelScope(shield=True):
            async with self._pool.connection(timeout=ACQUIRE_TIMEOUT) as conn:
                return await self._attempt(conn, body, read_only, single, idempotent)
        raise AssertionError("unreachable: a shielded attempt returns or raises")

    async def _attempt(
        self,
        conn: psycopg.AsyncConnection[Any],
        body: Body[T],
        read_only: bool,
        single: bool,
        idempotent: bool,
    ) -> T:
        """One attempt of :meth:`_run` on ``conn``."""
        if single:
            try:
                async with conn.cursor() as cur:
                    return await body(cur)
            except Exception as exc:
                # The server said why it closed (a shutdown, an idle timeout):
                # the statement did not run. Without a word, it may have.
                silent = getattr(exc, "sqlstate", None) is None
                if not (read_only or idempotent) and silent and is_disconnect(exc):
                    raise _Uncertain() from exc
                raise
        committing = False
        try:
            async with conn.transaction():
                if read_only:
                    await conn.execute(SNAPSHOT)
                async with conn.cursor() as cur:
                    result = await body(cur)
                committing = True
        except Exception as exc:
            if committing and not read_only and is_disconnect(exc):
                raise _Uncertain() from exc
            raise
        return result

    def _lost(self, exc: BaseException) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            logger.warning(
                "database_unreachable",
                database=self.path,
                error=scrub(f"{type(exc).__name__}: {str(exc).strip()}", self._secrets),
                retrying_for=RECONNECT_FOR,
            )

    def _failure(self, exc: Exception, operation: str, run_id: str | None) -> Exception:
        if isinstance(exc, PoolClosed):
            return StoreClosedError(operation, self.path, run_id)
        return failure(
            exc, operation, self.path, run_id, closed=self._closed, secrets=self._secrets
        )

    def _decoding(self, operation: str, run_id: str | None = None) -> Decoding:
        """``with self._decoding(...):`` around the decoding of a whole result of ``operation``."""
        return Decoding(operation, self.path, run_id)

    def wake(self, kind: str) -> str:
        """The payload of a wake-up: why (``run``, ``event``, ``delivery``, ``ended``) and
        from which store, so that a store ignores its own."""
        return f"{kind} {self.origin}"

    async def _notify(self, cur: Cursor, kind: str) -> None:
        """Wake the other processes once this transaction commits (``kind`` says why)."""
        await cur.execute("SELECT pg_notify(%s, %s)", (self.channel, self.wake(kind)))

    # -- wake-ups ---------------------------------------------------------

    async def change_token(self) -> int:
        """A number that moves when a notification arrived: another process committed
        something a loop may wait for (a run, an event, deliveries, a run that ended).

        It asks the listening connection for what the server holds for it (one
        round trip) unless a :meth:`wait_change` is reading it already; that one
        counts what arrives.
        """
        if self._closed:
            raise StoreClosedError("change_token", self.path)
        if not self._listening.locked():
            async with self._listening:
                try:
                    conn = await self._listener_connection()
                    # A round trip: the server delivers what it holds for this connection
                    # (kept by psycopg until read), then one look that does not wait.
                    await conn.execute("SELECT 1")
                    async for note in conn.notifies(timeout=0):
                        if self._foreign(note.payload):
                            self._bump()
                except (psycopg.Error, OSError) as exc:
                    await self._listener_failed(exc)
        return self._changes

    async def wait_change(self, token: int, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the token to move from ``token``; the token.

        One caller at a time reads the listening connection; the others wait for it
        to report. A listening connection that fails is reported as a change (the
        loops then scan) and opened again on the next call.
        """
        if self._closed:
            raise StoreClosedError("wait_change", self.path)
        if self._changes != token:
            return self._changes
        with anyio.move_on_after(timeout):
            if self._listening.locked():
                await self._changed.wait()
            else:
                async with self._listening:
                    await self._listen(timeout)
        return self._changes

    async def _listener_connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._listener
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, **connection_kwargs(self.schema)
            )
            await conn.execute(f"LISTEN {self.channel}")
            self._listener = conn
        return conn

    async def _listen(self, timeout: float) -> None:
        try:
            conn = await self._listener_connection()
            async for note in conn.notifies(timeout=timeout):
                if self._foreign(note.payload):
                    self._bump()
                    break
        except (psycopg.Error, OSError) as exc:
            await self._listener_failed(exc)
            # Not at once again: the caller's next wait sleeps out the rest of its timeout.
            await anyio.sleep(timeout)

    def _foreign(self, payload: str) -> bool:
        """Whether a notification came from another store (process): this process's
        own commits wake its loops directly, as on SQLite, and need no scan."""
        return not payload.endswith(self.origin)

    async def _listener_failed(self, exc: BaseException) -> None:
        """Drop the listening connection and report a change: what it missed is unknown."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        error = scrub(str(exc).strip(), self._secrets)
        logger.warning("database_listen_failed", database=self.path, error=error)
        self._bump()

    def _bump(self) -> None:
        self._changes += 1
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def database_time(self) -> datetime:
        """The database server's clock, now (``clock_timestamp()``)."""

        async def read(cur: Cursor) -> datetime:
            await cur.execute("SELECT clock_timestamp() AS now")
            row = await cur.fetchone()
            assert row is not None
            now: datetime = row["now"]
            return now

        return await self._run(read, "database_time")

    async def check_file(self) -> None:
        """Nothing to check: a server's database cannot be replaced under a connection."""
        if self._closed:
            raise StoreClosedError("check_file", self.path)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listener, self._listener = self._listener, None
        try:
            if listener is not None:
                await listener.close()
        finally:
            await self._pool.close()


def open_pool(conninfo: str, schema: str) -> AsyncConnectionPool[Any]:
    """A pool of connections to ``conninfo`` on ``schema`` (not opened yet)."""
    return AsyncConnectionPool(
        conninfo,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        kwargs=connection_kwargs(schema),
        configure=configure,
        open=False,
        timeout=RECONNECT_FOR,
        reconnect_timeout=RECONNECT_FOR,
        name=f"runtime-{schema}",
    )
