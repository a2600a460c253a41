"""The SQLite store's WAL checkpointer: its own connection, on its own thread.

Why it exists. In WAL mode every commit appends the pages it changed to the -wal
file; a checkpoint copies them back into the database file, and the WAL starts
over from its beginning only when a writer finds it wholly copied and no reader
still using it. The store's writers never checkpoint (``wal_autocheckpoint = 0``):
a checkpoint copies pages and flushes two files to disk, which on the event loop's
thread (the fast path) would hold the loop, and on the writer's thread would hold
every queued write behind it (70-755 ms at a million runs, issue 8). Instead the
write path wakes this thread every ``CHECKPOINT_EVERY`` commits, without waiting
for it, and goes on.

What it does when woken:

- Nothing while the -wal file is no larger than ``WAL_KEEP``: the writers cut it
  back to that size when they start the WAL over, so it then holds no more frames
  than that. Every checkpoint flushes two files and copies the pages written since
  the last one (a page written a thousand times is copied once per checkpoint), so
  fewer, larger checkpoints cost less: checkpointing every 64 commits cost about a
  tenth of the sequential steps per second on this project's 2-core machines, and
  checkpointing past 4 MB 10-14%; past 6 MB the cost was within noise, and the file
  stayed under 10 MB (docs/semantics.md).
- ``PRAGMA wal_checkpoint(PASSIVE)``: copies what it can without taking any lock
  that a reader or a writer waits for.
- When the WAL still holds more than ``RESTART_ABOVE`` bytes of frames after that
  (under a steady write load a passive checkpoint never finds the WAL idle, so it
  never starts over and the file would only grow): passive checkpoints again (up
  to ``CATCH_UP_PASSES``) while more than ``CATCH_UP_FRAMES`` frames written
  meanwhile are left to copy, then ``wal_checkpoint(RESTART)``
  with a busy timeout of ``RESTART_WAIT_MS``: it takes the write lock, copies the
  few frames written since, waits that long at most for readers to leave the WAL,
  and lets the next writer start the WAL over. A writer meeting it waits (the
  fast path steps aside to the queued path) for at most that long plus a flush.
  RESTART rather than TRUNCATE, because truncating rewrites the WAL header, which
  every other connection sees as a change (``PRAGMA data_version``), and the
  store's change watcher would report a commit nobody made. The writers'
  ``journal_size_limit`` (``WAL_KEEP``) cuts the file back when a writer starts
  the WAL over.
- On close, ``wal_checkpoint(TRUNCATE)``, so the file is left compact (SQLite
  also checkpoints when a process's last connection closes, but not while another
  process has the file open).

A checkpoint that fails is logged (``wal_checkpoint_failed``) and never fatal: the
WAL only grows until the next one gets through.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass

import structlog

logger = structlog.get_logger("runtime.store")

CHECKPOINT_EVERY = 64
"""Commits (fast or queued) between two wake-ups of the checkpointer."""

RESTART_ABOVE = 6 * 1024 * 1024
"""WAL bytes (in frames) left after a passive checkpoint above which the WAL is restarted."""

RESTART_WAIT_MS = 20
"""The busy timeout of a RESTART checkpoint: the longest it waits for a writer or readers."""

CATCH_UP_PASSES = 3
"""Passive checkpoints run again, at most, before a RESTART, while frames are left."""

CATCH_UP_FRAMES = 64
"""Frames left uncopied that a RESTART may copy itself, holding the write lock."""

WAL_KEEP = 6 * 1024 * 1024
"""The writers' ``journal_size_limit``: bytes of WAL file kept when the WAL starts over."""

_FRAME_HEADER = 24
"""Bytes of a WAL frame besides its page."""


@dataclass
class CheckpointStats:
    """What the checkpointer did (read them from the loop; they are only ever replaced)."""

    wakeups: int = 0
    """Times the write path woke it."""
    checkpoints: int = 0
    """Passive checkpoints run (a wake-up finding the WAL small runs none)."""
    restarts: int = 0
    """RESTART checkpoints that got through."""
    busy: int = 0
    """RESTART checkpoints that gave up within their busy timeout (tried again later)."""
    failures: int = 0
    """Checkpoints that raised (logged)."""
    longest: float = 0.0
    """Seconds of the longest wake-up (passive checkpoint and restart together)."""
    longest_restart: float = 0.0
    """Seconds of the longest RESTART: the most a writer may have waited for one."""
    frames: int = 0
    """Frames in the WAL at the last passive checkpoint."""


class Checkpointer:
    """Checkpoints the WAL on a daemon thread, when woken; stopped by :meth:`close`.

    A daemon, so a store nobody closed never keeps the process from exiting.
    """

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        """Take ``db`` (opened with ``check_same_thread=False``) and start the thread."""
        self.path = path
        self._wal = f"{os.path.abspath(path)}-wal"
        self.stats = CheckpointStats()
        self._db = db
        page = db.execute("PRAGMA page_size").fetchone()[0]
        self._restart_frames = RESTART_ABOVE // (page + _FRAME_HEADER)
        self._wake = threading.Event()
        self._stopping = False
        self._final = True
        self._thread = threading.Thread(
            target=self._main, name=f"runtime-checkpointer {path}", daemon=True
        )
        self._thread.start()

    @classmethod
    def open(cls, path: str, synchronous: str) -> Checkpointer:
        """A checkpointer for the database file at ``path`` (already in WAL mode).

        Raises:
            sqlite3.Error: SQLite cannot open or configure the file.
        """
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
            db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            db.execute("PRAGMA wal_autocheckpoint = 0")
            db.execute(f"PRAGMA journal_size_limit = {WAL_KEEP}")
            return cls(db, path)
        except BaseException:
            db.close()
            raise

    def wake(self) -> None:
        """Ask for a checkpoint soon; returns at once (called from the write path)."""
        self._wake.set()

    def close(self, final: bool = True) -> None:
        """Stop the thread, after a last (TRUNCATE) checkpoint if ``final``; wait for it.

        Blocks for that checkpoint: call it off the event loop's thread.
        """
        self.stop(final)
        self._thread.join()

    def stop(self, final: bool = False) -> None:
        """Ask the thread to end (after a last checkpoint if ``final``); do not wait.

        For a store garbage collected unclosed: its thread does not wait forever.
        """
        self._final = final
        self._stopping = True
        self._wake.set()

    def _main(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                self._checkpoint()
            if self._final:
                self._run("TRUNCATE")
        finally:
            self._db.close()

    def _checkpoint(self) -> None:
        self.stats.wakeups += 1
        if _size(self._wal) <= WAL_KEEP:
            # Writers cut the file back to WAL_KEEP when they start the WAL over, so a
            # file no larger holds no more frames than that: not worth copying yet.
            return
        started = time.perf_counter()
        result = self._run("PASSIVE")
        if result is None:
            return
        stats = self.stats
        stats.checkpoints += 1
        stats.frames = result[1]
        if result[1] > self._restart_frames:
            # Copy what was written meanwhile first, without the lock, so the RESTART
            # (which holds the write lock while it copies) has little left to do.
            for _ in range(CATCH_UP_PASSES):
                if result is None or result[1] - result[2] <= CATCH_UP_FRAMES:
                    break
                result = self._run("PASSIVE")
            restarting = time.perf_counter()
            restart = self._run("RESTART")
            stats.longest_restart = max(stats.longest_restart, time.perf_counter() - restarting)
            if restart is not None and restart[0]:
                stats.busy += 1
            elif restart is not None:
                stats.restarts += 1
        stats.longest = max(stats.longest, time.perf_counter() - started)

    def _run(self, mode: str) -> tuple[int, int, int] | None:
        """``PRAGMA wal_checkpoint(mode)``: (busy, frames in the WAL, frames copied)."""
        try:
            row = self._db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:
            # Not fatal: the WAL only grows until the next checkpoint gets through.
            self.stats.failures += 1
            logger.warning("wal_checkpoint_failed", path=self.path, mode=mode, error=str(exc))
            return None
        return int(row[0]), int(row[1]), int(row[2])


def _size(file: str) -> int:
    """Bytes in ``file``, 0 when there is none."""
    try:
        return os.stat(file).st_size
    except OSError:
        return 0
