"""The PostgreSQL store's connection layer: the pool, its sessions, errors translated.

Every connection the store uses is configured the same way (:func:`configure`): its
``search_path`` is the store's schema (so the SQL names tables bare), its time zone
UTC (so a ``timestamptz`` comes back as an aware UTC ``datetime``), and ``json``
columns come back as the text that was stored (the shared row builders decode it,
as they do SQLite's). Every exception from psycopg reaches a store method's caller
as one error of runtime's tree (:func:`failure`), with the original as its cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, PyFormat
from psycopg.rows import dict_row
from psycopg.types.datetime import DatetimeDumper
from psycopg.types.string import TextLoader

from runtime.errors import (
    CorruptRecordError,
    DatabaseLockedError,
    RuntimeBaseError,
    StoreArgumentError,
    StoreClosedError,
    StoreOperationError,
)

LOCK_TIMEOUT_MS = 10_000
"""How long a statement waits for a row or table lock before it fails (as SQLite's busy timeout)."""

IDLE_IN_TRANSACTION_MS = 30_000
"""How long the server keeps a transaction open with nothing sent (the lease's length)."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when connecting."""


def connection_kwargs(schema: str) -> dict[str, Any]:
    """Keyword arguments for every connection the store opens on ``schema``."""
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "connect_timeout": CONNECT_TIMEOUT,
        # Shown in pg_stat_activity, so an operator can tell runtime's connections apart.
        "application_name": f"runtime:{schema}",
        # A server (or a network path) that went away without a word is noticed within
        # about 20 s rather than at TCP's own timeout, minutes later.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 2,
        # idle_in_transaction_session_timeout: a process frozen inside a transaction
        # (stopped, partitioned) gives up its row locks after that long, so another
        # worker can take its runs over (the store retries on a new connection).
        "options": (
            f"-c search_path={schema} -c timezone=UTC -c lock_timeout={LOCK_TIMEOUT_MS} "
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} "
            # The store's statements are prepared after their fifth use (psycopg's
            # default); a generic plan then spares planning them at every call (about
            # 0.25 ms of a checkpoint's 0.4). tests/store/test_postgres_plans.py checks
            # each statement's generic plan seeks.
            "-c plan_cache_mode=force_generic_plan"
        ),
        # Statements are prepared after their fifth use (psycopg's default): the hot ones
        # (a checkpoint's, a claim's) are planned once per connection.
    }


class AwareDumper(DatetimeDumper):
    """Dumps an aware ``datetime``; refuses a naive one, as the SQLite store does, rather
    than let the server read it in the session's time zone."""

    def upgrade(self, obj: datetime, format: PyFormat) -> Dumper:
        if obj.tzinfo is None:
            raise StoreArgumentError(f"naive datetime {obj!r}: runtime stores aware UTC times only")
        return super().upgrade(obj, format)


def adapt(conn: psycopg.AsyncConnection[Any]) -> None:
    """Load ``json`` as text (the row builders shared with SQLite decode it themselves);
    refuse naive datetimes."""
    conn.adapters.register_loader("json", TextLoader)
    conn.adapters.register_dumper(datetime, AwareDumper)


async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's set-up of each new connection: :func:`adapt`."""
    adapt(conn)


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (or the server) went away, not a bad statement.

    Such a failure is worth retrying on a new connection: a restarted server, a
    failover, a connection the server or a proxy closed.
    """
    if isinstance(exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown):
        return True
    # The server ended an idle session (idle_session_timeout; a transaction idle too long):
    # a FATAL that closes the connection, met when the pool hands it out again.
    if isinstance(exc, pg_errors.IdleSessionTimeout | pg_errors.IdleInTransactionSessionTimeout):
        return True
    if isinstance(exc, pg_errors.CannotConnectNow | pg_errors.ConnectionException):
        return True
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, pg_errors.QueryCanceled):
        # Raised by libpq itself (no SQLSTATE): "server closed the connection
        # unexpectedly", "connection refused", "consuming input failed".
        return getattr(exc, "sqlstate", None) is None
    return isinstance(exc, psycopg.InterfaceError)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret in it replaced by ``***`` (libpq may quote a password)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def failure(
    exc: Exception,
    operation: str,
    where: str,
    run_id: str | None = None,
    *,
    closed: bool = False,
    secrets: Sequence[str] = (),
) -> StoreOperationError:
    """The error a store method raises, ``from exc``, for an exception not of runtime's tree.

    - on a closed store: :class:`~runtime.errors.StoreClosedError`;
    - a lock waited for past ``LOCK_TIMEOUT_MS``, or a deadlock PostgreSQL broke:
      :class:`~runtime.errors.DatabaseLockedError`;
    - a ``ValueError`` or ``TypeError`` (bad JSON, an unknown status):
      :class:`~runtime.errors.CorruptRecordError`, a stored row that cannot be decoded;
    - anything else (the server unreachable, a constraint, a bad statement):
      :class:`~runtime.errors.StoreOperationError`, naming the driver's error.
    """
    if closed:
        return StoreClosedError(operation, where, run_id)
    detail = scrub(f"{type(exc).__name__}: {str(exc).strip()}", secrets)
    if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.DeadlockDetected):
        return DatabaseLockedError(operation, where, detail, run_id)
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, psycopg.Error):
        detail = f"a stored record cannot be decoded ({detail})"
        return CorruptRecordError(operation, where, detail, run_id)
    return StoreOperationError(operation, where, detail, run_id)


class Decoding:
    """Around the decoding of what a read returned: a bad row raises a ``CorruptRecordError``."""

    __slots__ = ("operation", "run_id", "where")

    def __init__(self, operation: str, where: str, run_id: str | None = None) -> None:
        self.operation = operation
        self.where = where
        self.run_id = run_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, RuntimeBaseError):
            raise failure(exc, self.operation, self.where, self.run_id) from exc
