"""The SQLite store's machinery: WAL, a fast path for writes, group commit, reads.

Why the writes look the way they do. A transaction through aiosqlite's
statement-by-statement API costs one thread hop per statement (BEGIN, each
INSERT/UPDATE, COMMIT), and on this project's machines one hop (about 60 us)
costs four times a whole WAL commit (about 15 us). So:

- **Fast path.** When the database is free, a write runs whole on the event
  loop's thread, on a second connection whose busy timeout is zero: it either
  takes the write lock at once or steps aside. In WAL mode with
  ``synchronous=NORMAL`` a commit does not fsync (that connection never runs
  checkpoints), so the loop is held for tens of microseconds, never for I/O
  waits. This halves a step's cost.
- **Turns.** Nothing on the fast path waits, so it must give the loop back
  itself: a task writing alone yields once it has kept the loop for
  ``TURN_EVERY``; when several tasks write, every write yields, and the writes
  made by the other tasks during that turn join its transaction (group commit,
  up to ``BATCH_MAX`` writes, applied together and redone one savepoint each
  only if one is refused). The yield is cancel-shielded: a write that was
  called happens, and the engine obeys cancellation between steps instead.
- **Queued path.** When another connection holds the lock (another process, or
  a transaction already queued here), the write goes to aiosqlite's connection
  thread (``Connection._execute``; the version is pinned for it), which waits
  for the lock with a busy timeout. Writers that arrive while such a
  transaction is in flight queue up, and the next transaction commits the
  whole queue at once (group commit), each writer's part in its own SAVEPOINT
  so one refused write does not undo the others.

Either way a writer's call returns only after the COMMIT that holds its write,
so a step never starts before the previous step's checkpoint is durable. The
thread connection checkpoints the WAL every ``CHECKPOINT_EVERY`` fast commits.
``synchronous=full`` (an fsync per commit) turns the fast path off, as it would
hold the loop for a disk flush.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

import aiosqlite
import anyio
import structlog

from runtime.clock import from_text
from runtime.errors import SchemaVersionError, StoreError
from runtime.models import RunRecord, RunStatus, StepError, StepRecord, StepStatus

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]

logger = structlog.get_logger("runtime.store")

BUSY_TIMEOUT_MS = 10_000

CHECKPOINT_EVERY = 1000
"""Fast-path commits between two WAL checkpoints run on the connection thread."""

TURN_EVERY = 0.001
"""Seconds a task writing alone on the fast path may keep the loop before it yields."""

BATCH_MAX = 64
"""Writes in one fast transaction, at most: so many tasks go on per turn of the loop."""

_RUN_COLUMNS = (
    "id, workflow, version, status, idempotency_key, input, output, error, owner_id, "
    "parent_run_id, available_at, created_at, updated_at, ended_at, rollback_status, control, "
    "wake_at, kind"
)
_STEP_COLUMNS = (
    "run_id, seq, name, status, attempts, output, compensate_input, error, started_at, "
    "ended_at, completed_order, compensable"
)


def migrations() -> list[tuple[int, str]]:
    """The schema migrations shipped with this version, as (version, SQL)."""
    folder = resources.files("runtime.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


class _Slot:
    """One write: the function, and where its outcome lands.

    The event a waiting writer sleeps on is made only when someone waits: most
    fast writes commit before anyone would.
    """

    __slots__ = ("_event", "error", "finished", "fn", "gather", "lead", "result")

    def __init__(self, fn: Write) -> None:
        self.fn = fn
        self.finished = False
        self._event: anyio.Event | None = None
        self.lead = False
        """Its writer is to commit the thread's queue next."""
        self.gather = False
        """Its writer is to lead the next fast transaction (it found the last one full)."""
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self) -> None:
        """The transaction holding this write ended (or its writer is to lead the next)."""
        self.finished = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if not self.finished:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


class SqliteCore:
    """The connection, the group-commit write path and reads; the stores build on it."""

    def __init__(
        self, conn: aiosqlite.Connection, path: str, fast: sqlite3.Connection | None = None
    ) -> None:
        self._conn = conn
        self.path = path
        self._fast = fast
        self._queue: list[_Slot] = []
        self._batch: list[_Slot] | None = None
        """Writes gathered for the next fast transaction (while its first writer yields)."""
        self._turn_at = time.perf_counter()
        """When a fast write last gave the loop its turn."""
        self._overflow: list[_Slot] = []
        """Writes that found the gathered transaction full: they make the next one."""
        self._shared = False
        """The last fast transaction held several tasks' writes: they take turns."""
        self._writer: object = None
        """The task of the last fast write: another task writing means they take turns."""
        self._flushing = False
        self._since_checkpoint = 0
        self._versions: tuple[int, int] | None = None
        self._others = 0
        self.commits = 0
        """Transactions committed (a group commit counts once)."""
        self.fast_commits = 0
        """Of which on the fast path."""

    async def close(self) -> None:
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        await self._conn.close()

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a write transaction, on the fast path when the lock is free.

        A write, once called, happens: it is never cut off by the caller's
        cancellation, which is delivered at the caller's next checkpoint.
        """
        if self._fast is None or self._flushing or self._queue:
            return await self._queued(fn)
        slot = _Slot(fn)
        if self._batch is not None:
            # A fast transaction is being gathered in this turn of the loop: join it,
            # or the one after it when it is full.
            if len(self._batch) < BATCH_MAX:
                self._batch.append(slot)
            else:
                self._overflow.append(slot)
            return await self._outcome(slot)  # type: ignore[no-any-return]
        self._batch = [slot]
        writer, self._writer = self._writer, asyncio.current_task()
        if (
            self._shared
            or writer is not self._writer
            or time.perf_counter() - self._turn_at >= TURN_EVERY
        ):
            # Several tasks write (or this one has had the loop long enough): a turn.
            await self._gather()
        elif self._commit_alone(slot):
            # The common case, kept lean: a task writing alone, within its turn.
            if self._since_checkpoint >= CHECKPOINT_EVERY:
                self._since_checkpoint = 0
                await self._checkpoint()
            if slot.error is not None:
                raise _store_error(slot.error)
            return slot.result  # type: ignore[no-any-return]
        if self._commit_batch() and self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            await self._checkpoint()
        return await self._outcome(slot)  # type: ignore[no-any-return]

    async def _gather(self) -> None:
        """Give the loop its turn before committing the batch this writer leads.

        Other tasks run meanwhile (a ticker, a deadline, another run's step), and the
        writes they make join this transaction (group commit). Shielded: a write that
        was called happens.
        """
        await anyio.lowlevel.cancel_shielded_checkpoint()
        self._turn_at = time.perf_counter()

    def _commit_alone(self, slot: _Slot) -> bool:
        """Commit one write on this thread; False (nothing done) if the lock is taken."""
        db = self._fast
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False  # busy: the batch path hands it to the thread
        self._batch = None
        self._shared = False
        try:
            committed = _apply_batch(db, [slot])
        except BaseException as exc:  # the COMMIT itself failed (disk full, say)
            slot.error = exc
            return True
        if committed:
            self.commits += 1
            self.fast_commits += 1
            self._since_checkpoint += 1
        return True

    def _commit_batch(self) -> bool:
        """Commit the gathered writes on this thread; False if the lock was taken.

        Writes that find the lock taken (by another process) go to the queue, whose
        transaction waits for the lock on the connection thread.
        """
        batch, self._batch = self._batch or [], None
        fast = self._fast
        if fast is not None and not self._flushing and not self._queue:
            try:
                fast.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                pass  # busy: another connection writes; the thread waits for the lock
            else:
                # Writers that met in one turn take turns again at their next write.
                self._shared = len(batch) > 1
                try:
                    if _apply_batch(fast, batch):
                        self.commits += 1
                        self.fast_commits += 1
                        self._since_checkpoint += 1
                except BaseException as exc:
                    for slot in batch:
                        if slot.error is None:
                            slot.error = exc
                for slot in batch:
                    slot.finish()
                if self._overflow:
                    # The writers that found the batch full make the next one, led by
                    # the first of them: at most BATCH_MAX tasks wake per turn.
                    self._batch = self._overflow[:BATCH_MAX]
                    self._overflow = self._overflow[BATCH_MAX:]
                    self._batch[0].gather = True
                    self._batch[0].finish()
                return True
        batch += self._overflow
        self._overflow = []
        self._queue += batch
        if not self._flushing:
            self._hand_lead(batch[0])
        return False

    def _hand_lead(self, slot: _Slot) -> None:
        """Make ``slot``'s writer the one that commits the queue next."""
        self._flushing = True
        slot.lead = True
        slot.finish()

    async def _outcome(self, slot: _Slot) -> Any:
        """Wait for the transaction holding ``slot`` (committing it if handed the lead)."""
        if slot.lead or slot.gather or not slot.finished:
            # Shielded: once queued, a write happens, and whoever leads must hand
            # the lead on, or the writers behind it would wait forever.
            with anyio.CancelScope(shield=True):
                await slot.wait()
                if slot.gather:
                    slot.gather = False
                    slot.finished, slot._event = False, None
                    await self._gather()
                    self._commit_batch()
                    await slot.wait()
                if slot.lead:
                    slot.lead = False
                    slot.finished, slot._event = False, None
                    await self._lead()
        if slot.error is not None:
            raise _store_error(slot.error)
        return slot.result

    async def change_token(self) -> int:
        thread = await self._read(lambda db: db.execute("PRAGMA data_version").fetchone()[0])
        fast = self._fast
        if fast is None:
            return int(thread)
        # Each connection's data_version moves when *another* connection commits. This
        # process's own two connections move one each; another process moves both.
        mine = fast.execute("PRAGMA data_version").fetchone()[0]
        last = self._versions
        self._versions = (thread, mine)
        if last is not None and thread != last[0] and mine != last[1]:
            self._others += 1
        return self._others

    async def _checkpoint(self) -> None:
        """Fold the WAL into the database on the thread (the fast path never does)."""
        with anyio.CancelScope(shield=True):
            try:
                await _on_thread(self._conn, _passive_checkpoint)
            except sqlite3.Error as exc:
                # Not fatal: the WAL only grows until the next checkpoint gets through.
                logger.warning("wal_checkpoint_failed", path=self.path, error=str(exc))

    async def _queued(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a write transaction shared with concurrent writers."""
        slot = _Slot(fn)
        self._queue.append(slot)
        if not self._flushing:
            self._hand_lead(slot)
        return await self._outcome(slot)  # type: ignore[no-any-return]

    async def _lead(self) -> None:
        batch, self._queue = self._queue, []
        try:
            if await _on_thread(self._conn, _run_batch, batch):
                self.commits += 1
        except BaseException as exc:
            for slot in batch:
                if slot.error is None:
                    slot.error = _store_error(exc)
        for slot in batch:
            slot.finish()
        if self._queue:
            self._hand_lead(self._queue[0])
        else:
            self._flushing = False

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await _on_thread(self._conn, fn)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc


# -- on the connection thread -------------------------------------------


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(sqlite3_connection, *args)`` on aiosqlite's connection thread, in one hop.

    ``Connection._execute`` is aiosqlite's own way of queueing work on that thread
    (its public methods are built on it); the pinned version keeps it stable.
    """
    result = await conn._execute(fn, conn._conn, *args)  # type: ignore[no-untyped-call]
    return result  # type: ignore[no-any-return]


def _passive_checkpoint(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def open_fast(path: str) -> sqlite3.Connection:
    """The fast-path connection: never waits for the lock, never checkpoints."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 0")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    return db


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


def _run_batch(db: sqlite3.Connection, batch: list[_Slot]) -> bool:
    """One transaction for the whole batch (waiting for the lock); True if committed."""
    db.execute("BEGIN IMMEDIATE")
    return _apply_batch(db, batch)


def _apply_batch(db: sqlite3.Connection, batch: list[_Slot]) -> bool:
    """Apply a batch's writes in an open transaction, then COMMIT; True if committed.

    A write that raises is undone alone and its error kept on its slot. Writes are
    applied together first; only if one raises are they applied again, each in its
    own savepoint (so a write function must touch nothing but the database).
    """
    try:
        if len(batch) == 1:
            slot = batch[0]
            try:
                slot.result = slot.fn(db)
            except Exception as exc:
                slot.error = exc
                db.execute("ROLLBACK")
                return False
        else:
            db.execute("SAVEPOINT batch")
            try:
                for slot in batch:
                    slot.result = slot.fn(db)
            except Exception:
                db.execute("ROLLBACK TO batch")
                for slot in batch:
                    db.execute("SAVEPOINT w")
                    try:
                        slot.result = slot.fn(db)
                    except Exception as exc:
                        slot.result, slot.error = None, exc
                        db.execute("ROLLBACK TO w")
                    db.execute("RELEASE w")
            db.execute("RELEASE batch")
        db.execute("COMMIT")
        return True
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _store_error(exc: BaseException, path: str | None = None) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        error = StoreError(f"SQLite database {path}: {exc}" if path else f"SQLite: {exc}")
        error.__cause__ = exc
        return error
    return exc


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _error(text: str | None) -> StepError | None:
    return None if text is None else StepError.model_validate_json(text)


async def baseline_commit_us(path: str, count: int = 1000) -> float:
    """Microseconds per insert-and-commit through aiosqlite's plain statement API.

    The benchmark's yardstick: one row per transaction, WAL, the same pragmas as the
    store, so a checkpoint's cost can be reported as a ratio to it.
    """
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await _on_thread(db, _configure, "normal")
        await db.execute("CREATE TABLE IF NOT EXISTS baseline (id INTEGER PRIMARY KEY, v TEXT)")
        started = time.perf_counter()
        for i in range(count):
            await db.execute("BEGIN IMMEDIATE")
            await db.execute("INSERT INTO baseline (v) VALUES (?)", (str(i),))
            await db.execute("COMMIT")
        return (time.perf_counter() - started) / count * 1e6


def _run(row: Sequence[Any], steps: list[StepRecord] | None = None) -> RunRecord:
    return RunRecord(
        id=row[0],
        workflow=row[1],
        version=row[2],
        status=RunStatus(row[3]),
        idempotency_key=row[4],
        input=_json(row[5]),
        output=_json(row[6]),
        error=_error(row[7]),
        owner_id=row[8],
        parent_run_id=row[9],
        available_at=from_text(row[10]),
        created_at=from_text(row[11]),
        updated_at=from_text(row[12]),
        ended_at=from_text(row[13]) if row[13] else None,
        rollback_status=RunStatus(row[14]) if row[14] else None,
        control=row[15],
        wake_at=from_text(row[16]) if row[16] else None,
        kind=row[17],
        steps=steps or [],
    )


def _step(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        run_id=row[0],
        seq=row[1],
        name=row[2],
        status=StepStatus(row[3]),
        attempts=row[4],
        output=_json(row[5]),
        compensate_input=_json(row[6]),
        error=_error(row[7]),
        started_at=from_text(row[8]) if row[8] else None,
        ended_at=from_text(row[9]) if row[9] else None,
        completed_order=row[10],
        compensable=bool(row[11]),
    )
