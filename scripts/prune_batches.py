"""How long one prune batch holds the writer, on a large database.

Not part of the test suite. It writes ``--runs`` completed runs of ``--steps``
steps (each with an event and two done deliveries) straight into a scratch runtime
database (SQL, for speed: the ages are what matter), half of them older than the
retention, then prunes the old half one batch transaction at a time and prints how
long each held the writer (BEGIN IMMEDIATE to COMMIT), then grows it again and
prunes through ``Store.prune``, timing each call (the queue and the hop to the
connection thread included)::

    nice -n 10 .venv/bin/python scripts/prune_batches.py --runs 1000000
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from runtime.clock import to_text
from runtime.pruner import Retention
from runtime.store.pruning import PRUNE_BATCH, PruneCursor
from runtime.store.sqlite import SqliteStore
from runtime.store.sqlite_retention import _batch

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHUNK = 10_000


def grow(path: str, runs: int, steps: int, first: int = 0) -> None:
    """``runs`` completed runs, the older half 40 days old, the rest 2 days old."""
    db = sqlite3.connect(path, isolation_level=None)
    for start in range(first, first + runs, CHUNK):
        db.execute("BEGIN")
        run_rows, step_rows, event_rows, delivery_rows = [], [], [], []
        for n in range(start, min(start + CHUNK, first + runs)):
            age = timedelta(days=40 if n % 2 == 0 else 2, milliseconds=n % 1_000_000)
            stamp = to_text(NOW - age)
            run_id = f"run_{n:026d}"
            run_rows.append((run_id, stamp, stamp, stamp, stamp))
            step_rows += [(run_id, seq, f"step-{seq}") for seq in range(steps)]
            event_rows.append((n + 1, f"evt_{n:026d}", stamp, stamp))
            delivery_rows += [
                (f"dlv_{n:026d}_{s}", f"evt_{n:026d}", n + 1, f"sub-{s}", stamp) for s in (0, 1)
            ]
        db.executemany(
            "INSERT INTO runs (id, workflow, kind, status, input, output, available_at, "
            "created_at, updated_at, ended_at) VALUES (?, 'wf', 'composition', 'completed', "
            "'null', '13', ?, ?, ?, ?)",
            run_rows,
        )
        db.executemany(
            "INSERT INTO steps (run_id, seq, name, status, attempts, output) "
            "VALUES (?, ?, ?, 'completed', 1, '\"output\"')",
            step_rows,
        )
        db.executemany(
            "INSERT INTO events (seq, id, name, data, metadata, occurred_at, available_at, "
            "fanned_out) VALUES (?, ?, 'order.placed', '{}', '{}', ?, ?, 1)",
            event_rows,
        )
        db.executemany(
            "INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, "
            "max_attempts, available_at, created_at, updated_at, finished_at) "
            "VALUES (?, ?, ?, ?, 'done', 3, ?5, ?5, ?5, ?5)",
            delivery_rows,
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


async def create(path: str) -> None:
    """The schema, as a store makes it."""
    await (await SqliteStore.open(path)).close()


def transactions(path: str, limit: int) -> tuple[list[float], list[float]]:
    """Prune the old half, timing each batch's whole transaction (BEGIN to COMMIT).

    Returns the wall times and the CPU times of this thread: on a shared machine the
    wall time's tail is mostly waiting for a core, which the CPU time leaves out.
    """
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")
    # The WAL is checkpointed between batches, untimed: a checkpoint is not the batch's
    # work, and the store's checkpoints leave the write path (issue 8, "reads").
    db.execute("PRAGMA wal_autocheckpoint = 0")
    cutoffs = Retention.of("30d").cutoffs(NOW)
    held: list[float] = []
    cpu: list[float] = []
    cursor = PruneCursor()
    while True:
        started, started_cpu = time.perf_counter(), time.thread_time()
        db.execute("BEGIN IMMEDIATE")
        batch = _batch(db, cutoffs, limit, cursor, dry=False)
        db.execute("COMMIT")
        held.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        if len(held) % 20 == 0:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        cursor = batch.cursor
        if not batch.more:
            db.close()
            return held, cpu


async def calls(path: str, limit: int) -> list[float]:
    """Prune through the store, timing each call (queueing and the thread hop included)."""
    store = await SqliteStore.open(path)
    cutoffs = Retention.of("30d").cutoffs(NOW)
    took: list[float] = []
    cursor: PruneCursor | None = None
    try:
        while True:
            started = time.perf_counter()
            batch = await store.prune(cutoffs, limit=limit, after=cursor)
            took.append(time.perf_counter() - started)
            cursor = batch.cursor
            if not batch.more:
                return took
    finally:
        await store.close()


def ms(values: list[float]) -> str:
    cut = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return (
        f"{len(values)} batches: p50 {statistics.median(values) * 1e3:.2f} ms, "
        f"p99 {cut[98] * 1e3:.2f} ms, max {max(values) * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--limit", type=int, default=PRUNE_BATCH, help="runs per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = str(Path(scratch) / "batches.db")
        anyio.run(create, path)
        started = time.perf_counter()
        grow(path, args.runs, args.steps)
        size = Path(path).stat().st_size / 1e6
        print(f"grew {args.runs} runs in {time.perf_counter() - started:.0f}s: {size:.0f} MB")
        wall, cpu = transactions(path, args.limit)
        print(f"one transaction, BEGIN to COMMIT: {ms(wall)}")
        print(f"  of which CPU time: {ms(cpu)}")
        grow(path, args.runs, args.steps, first=args.runs)  # again, for the store's path
        print(f"Store.prune calls: {ms(anyio.run(calls, path, args.limit))}")


if __name__ == "__main__":
    main()
