"""The SQLite store's write path: a fast path on the loop's thread, and group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite
import anyio

from runtime.errors import RuntimeBaseError, StoreOperationError
from runtime.store import sqlite_checkpoint
from runtime.store.sqlite_checkpoint import Checkpointer
from runtime.store.sqlite_connection import failure, on_thread, operation_of

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]

TURN_EVERY = 0.001
"""Seconds a task writing alone on the fast path may keep the loop before it yields."""

BATCH_MAX = 64
"""Writes in one fast transaction, at most: so many tasks go on per turn of the loop."""


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

    def again(self) -> None:
        """Wait anew: the writer was woken to lead, and now waits for the commit."""
        self.finished, self._event = False, None

    async def settle(self) -> BaseException | None:
        """Wait until finished, whatever cancellation arrives; return the one caught.

        asyncio's own cancellation (``task.cancel()``, ``asyncio.timeout``) goes
        through anyio's shields, so it is caught here and handed back for the caller
        to raise once its write's transaction has ended.
        """
        caught: BaseException | None = None
        while not self.finished:
            if self._event is None:
                self._event = anyio.Event()
            try:
                await self._event.wait()
            except asyncio.CancelledError as exc:
                if caught is None:
                    caught = exc
        return caught


class GroupCommit:
    """The write path of :class:`~runtime.store.sqlite_core.SqliteCore`.

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
      only if one is refused).
    - **Queued path.** When another connection holds the lock (another process, or
      a transaction already queued here), the write goes to aiosqlite's connection
      thread (``Connection._execute``; the version is pinned for it), which waits
      for the lock with a busy timeout. Writers that arrive while such a
      transaction is in flight queue up, and the next transaction commits the
      whole queue at once (group commit), each writer's part in its own SAVEPOINT
      so one refused write does not undo the others.

    Either way a writer's call returns only after the COMMIT that holds its write,
    so a step never starts before the previous step's checkpoint is durable.
    ``synchronous=full`` (an fsync per commit) turns the fast path off, as it would
    hold the loop for a disk flush.

    **The connections of a store on a file**, and why each exists:

    1. the writer (aiosqlite's connection and its thread): queued and contended
       writes, waiting for the lock with the busy timeout;
    2. the fast connection, on the event loop's thread: uncontended writes, and the
       change watcher's ``PRAGMA data_version`` (it does not move for its own
       commits, the common ones);
    3. the reader (a second aiosqlite connection, ``query_only``, its own thread):
       every read outside a write transaction (``SqliteCore._read``), so a read never
       waits behind a queued write, a checkpoint or a slow scan on the writer's
       thread (in WAL mode readers and the writer do not block each other);
    4. the checkpointer (:mod:`runtime.store.sqlite_checkpoint`, its own thread):
       the writers never checkpoint (``wal_autocheckpoint = 0``); every
       ``CHECKPOINT_EVERY`` commits, fast or queued, the write path wakes it without
       waiting, and the WAL file stays bounded.

    A private in-memory database (``:memory:``) cannot be shared between
    connections: it has the writer alone, which also reads, and no WAL.

    **Cancellation.** A write, once called, ends its transaction (committed, or
    refused with its error) before its caller sees a cancellation: the yield and the
    waits are shielded from anyio's cancel scopes, and asyncio's own cancellation,
    which shields do not stop, is caught and raised again once the transaction has
    ended. Whoever gathers or leads a transaction always finishes it, so no writer
    is ever left waiting on a transaction nobody will commit.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: str,
        fast: sqlite3.Connection | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self._conn = conn
        self.path = path
        self._fast = fast
        self.checkpointer = checkpointer
        """Checkpoints the WAL off the write path (none for an in-memory database)."""
        self._forgotten = (
            None if checkpointer is None else weakref.finalize(self, checkpointer.stop)
        )
        """Stops the checkpointer's thread if this store is garbage collected unclosed."""
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
        self._closed = False
        """``close()`` was called: every operation from now on is a ``StoreClosedError``."""
        self._since_checkpoint = 0
        self.commits = 0
        """Transactions committed (a group commit counts once)."""
        self.fast_commits = 0
        """Of which on the fast path."""

    async def close(self) -> None:
        self._closed = True
        checkpointer, self.checkpointer = self.checkpointer, None
        if self._forgotten is not None:
            self._forgotten.detach()
        if checkpointer is not None:
            # Its last checkpoint flushes files: waited for off the loop, to its end, on
            # the writer's idle thread (a daemon: a worker thread of anyio's would keep
            # the process from exiting if the loop were torn down meanwhile, by a
            # Ctrl-C say). A store that committed nothing (a command that only reads,
            # perhaps on a read-only file) leaves the WAL as it found it.
            final = self.commits > 0
            try:
                with anyio.CancelScope(shield=True):
                    await on_thread(self._conn, lambda _: checkpointer.close(final))
            finally:
                checkpointer.stop()  # stopped whatever happened to the writer's thread
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        await self._conn.close()

    async def _write(
        self, fn: Callable[[sqlite3.Connection], T], *, run_id: str | None = None
    ) -> T:
        """Run ``fn`` inside a write transaction, on the fast path when the lock is free.

        A write, once called, happens (or is refused with its error): a cancellation
        of the caller is raised only once the transaction holding it has ended. An
        error is raised as one of runtime's (see ``sqlite_connection.failure``);
        ``run_id`` names the run it was about.
        """
        if self._fast is None or self._flushing or self._queue:
            return await self._queued(fn, run_id=run_id)
        slot = _Slot(fn)
        try:
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
            cancelled: BaseException | None = None
            if (
                self._shared
                or writer is not self._writer
                or time.perf_counter() - self._turn_at >= TURN_EVERY
            ):
                # Several tasks write (or this one has had the loop long enough): a turn.
                cancelled = await self._gather()
            elif self._commit_alone(slot):
                # The common case, kept lean: a task writing alone, within its turn.
                if slot.error is not None:
                    raise slot.error
                return slot.result  # type: ignore[no-any-return]
            # Whatever happened during the turn, the batch is committed (or handed to the
            # thread) now: the writers that joined it are waiting for it.
            self._commit_batch()
            return await self._outcome(slot, cancelled)  # type: ignore[no-any-return]
        except RuntimeBaseError:
            raise
        except Exception as exc:
            raise self._failure(exc, operation_of(fn), run_id) from exc

    async def _gather(self) -> BaseException | None:
        """Give the loop its turn before committing the batch this writer leads.

        Other tasks run meanwhile (a ticker, a deadline, another run's step), and the
        writes they make join this transaction (group commit). A cancellation arriving
        meanwhile (asyncio's own gets through the shield) is not raised but returned,
        for the caller to raise once the batch has been committed.
        """
        try:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        except GeneratorExit:
            # The coroutine is being closed (the loop is torn down): it can wait for
            # nothing more, but what the batch gathered is committed all the same.
            self._commit_batch()
            raise
        except BaseException as exc:  # raised again once the batch has ended
            return exc
        finally:
            self._turn_at = time.perf_counter()
        return None

    def _commit_alone(self, slot: _Slot) -> bool:
        """Commit one write on this thread; False (nothing done) if the lock is taken."""
        db = self._fast
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False  # busy: the batch path hands it to the thread
        except sqlite3.Error as exc:  # not a busy lock: a damaged file, say
            self._batch = None
            slot.error = exc
            return True
        self._batch = None
        self._shared = False
        try:
            committed = _apply_batch(db, [slot])
        except BaseException as exc:  # the COMMIT itself failed (disk full, say)
            slot.error = exc
            return True
        if committed:
            self.fast_commits += 1
            self._committed()
        return True

    def _commit_batch(self) -> bool:
        """Commit the gathered writes on this thread; False if the lock was taken.

        Writes that find the lock taken (by another process) go to the queue, whose
        transaction waits for the lock on the connection thread. Every slot of the
        batch is finished, or queued with a writer handed the lead.
        """
        batch, self._batch = self._batch or [], None
        fast = self._fast
        if fast is not None and not self._flushing and not self._queue:
            try:
                fast.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                pass  # busy: another connection writes; the thread waits for the lock
            except sqlite3.Error as exc:  # not a busy lock: a damaged file, say
                failed, self._overflow = batch + self._overflow, []
                for slot in failed:
                    slot.error = exc
                    slot.finish()
                return True
            else:
                # Writers that met in one turn take turns again at their next write.
                self._shared = len(batch) > 1
                try:
                    if _apply_batch(fast, batch):
                        self.fast_commits += 1
                        self._committed()
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
        if not batch:
            return False
        self._queue += batch
        if not self._flushing:
            self._hand_lead(batch[0])
        return False

    def _hand_lead(self, slot: _Slot) -> None:
        """Make ``slot``'s writer the one that commits the queue next."""
        self._flushing = True
        slot.lead = True
        slot.finish()

    async def _outcome(self, slot: _Slot, cancelled: BaseException | None = None) -> Any:
        """Wait for the transaction holding ``slot`` (committing it if handed the lead).

        ``cancelled``: a cancellation already caught for this writer. Any cancellation
        is raised only after the transaction holding the write has ended.
        """
        if slot.lead or slot.gather or not slot.finished:
            # Shielded: once queued, a write happens, and whoever leads must hand
            # the lead on, or the writers behind it would wait forever.
            with anyio.CancelScope(shield=True):
                caught = [cancelled, await slot.settle()]
                if slot.gather:
                    slot.gather = False
                    slot.again()
                    caught.append(await self._gather())
                    self._commit_batch()
                    caught.append(await slot.settle())
                if slot.lead:
                    slot.lead = False
                    slot.again()
                    caught.append(await self._lead())
                cancelled = next((exc for exc in caught if exc is not None), None)
        if cancelled is not None:
            raise cancelled
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _committed(self) -> None:
        """Count a commit; wake the checkpointer every ``CHECKPOINT_EVERY`` (never wait)."""
        self.commits += 1
        self._since_checkpoint += 1
        if self._since_checkpoint >= sqlite_checkpoint.CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            if self.checkpointer is not None:
                self.checkpointer.wake()

    async def _queued(
        self, fn: Callable[[sqlite3.Connection], T], *, run_id: str | None = None
    ) -> T:
        """Run ``fn`` inside a write transaction shared with concurrent writers, on the thread.

        Errors as :meth:`_write`'s.
        """
        slot = _Slot(fn)
        self._queue.append(slot)
        if not self._flushing:
            self._hand_lead(slot)
        try:
            return await self._outcome(slot)  # type: ignore[no-any-return]
        except RuntimeBaseError:
            raise
        except Exception as exc:
            raise self._failure(exc, operation_of(fn), run_id) from exc

    def _failure(self, exc: Exception, operation: str, run_id: str | None) -> StoreOperationError:
        """What a store method raises for ``exc`` (see ``sqlite_connection.failure``)."""
        return failure(exc, operation, self.path, run_id, closed=self._closed)

    async def _lead(self) -> BaseException | None:
        """Commit the queue on the thread; return a cancellation caught meanwhile.

        The transaction runs on aiosqlite's thread whatever happens to this task, so
        this task waits for it to the end (a cancellation is caught and returned) and
        always finishes the batch's slots and hands the lead on.
        """
        batch, self._queue = self._queue, []
        caught: BaseException | None = None
        try:
            # A bare future, not a task group's task, on purpose: a task group would cancel
            # it with this task, and the thread commits the batch whatever happens to
            # this task; it is always awaited to its end just below.
            work = asyncio.ensure_future(on_thread(self._conn, _run_batch, batch))  # noqa: TID251
            while not work.done():
                try:
                    await asyncio.wait((work,))
                except asyncio.CancelledError as exc:
                    if caught is None:
                        caught = exc
            if work.result():
                self._committed()
        except BaseException as exc:
            for slot in batch:
                if slot.error is None:
                    slot.error = exc
        for slot in batch:
            slot.finish()
        if self._queue:
            self._hand_lead(self._queue[0])
        else:
            self._flushing = False
        return caught


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
