"""Where one PostgreSQL checkpoint's time goes: wall-clock phases and a CPU profile.

Not part of the test suite. Runs with the project's venv against a PostgreSQL URL
(default: this machine's test server), in a scratch schema dropped at the end::

    .venv/bin/python scripts/profile_pg_checkpoint.py [postgresql://...] [--count 2000]

It opens the store directly (no engine), creates and claims one run, and writes
``--count`` progress checkpoints of one completed step each, one after another (a
lone checkpoint: what a sequential step pays). psycopg's calls are wrapped with
timers, so each checkpoint's wall time splits into:

- ``queue_wait``: from ``checkpoint()`` to the leader holding the commit lock;
- ``pool_get``/``pool_put``: taking the pooled connection and handing it back;
- ``select_for_update``: the statement that locks the runs. A progress checkpoint is
  now one autocommit statement (``store/postgres/fast_checkpoint.py``), so this phase
  is its whole round trip, commit and WAL flush included; ``begin``, ``pipeline`` and
  ``commit`` only appear for the changes written in a transaction;
- ``python``: the rest (the store's own code, building rows, the event loop).

Then the same loop under cProfile, and the top functions by own CPU time. One
``BEGIN; INSERT; COMMIT`` over the same kind of connection is measured alongside,
the yardstick ``runtime bench --database`` reports.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool

from runtime.bench.scratch import Scratch, baseline_commit_us
from runtime.models import RunKind, RunStatus, StepStatus
from runtime.store.changes import Progress
from runtime.store.postgres.store import PostgresStore
from runtime.store.records import NewRun, StepWrite

PHASES: dict[str, list[float]] = defaultdict(list)
_current: dict[str, float] = defaultdict(float)


@contextmanager
def _timed(phase: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _current[phase] += time.perf_counter() - started


def _wrap_async(owner: Any, name: str, phase: Callable[[tuple[Any, ...]], str | None]) -> None:
    original = getattr(owner, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        label = phase(args)
        if label is None:
            return await original(*args, **kwargs)
        with _timed(label):
            return await original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _instrument(store: PostgresStore) -> None:
    def sql_phase(args: tuple[Any, ...]) -> str | None:
        query = str(args[1])
        return "select_for_update" if "FOR UPDATE" in query else None

    _wrap_async(psycopg.AsyncCursor, "execute", sql_phase)
    _wrap_async(psycopg.AsyncCursor, "fetchall", lambda args: "select_for_update")
    _wrap_async(psycopg.AsyncTransaction, "__aenter__", lambda args: "begin")
    _wrap_async(psycopg.AsyncTransaction, "__aexit__", lambda args: "commit")
    _wrap_async(psycopg.AsyncPipeline, "__aexit__", lambda args: "pipeline")
    _wrap_async(psycopg.AsyncPipeline, "__aenter__", lambda args: "pipeline")
    _wrap_async(AsyncConnectionPool, "getconn", lambda args: "pool_get")
    _wrap_async(AsyncConnectionPool, "putconn", lambda args: "pool_put")
    store._commit_lock = _TimedLock(store._commit_lock)  # type: ignore[assignment]


class _TimedLock:
    """The commit lock, its acquisition timed (the group commit's queue wait)."""

    def __init__(self, lock: anyio.Lock) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        with _timed("queue_wait"):
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


async def _setup(area: Scratch) -> tuple[PostgresStore, str, str]:
    url = area.url("profile")
    schema = url.rpartition("schema=")[2]
    store = await PostgresStore.open(area.conninfo, schema=schema)
    return store, await _new_run(store, "profile-owner"), "profile-owner"


async def _new_run(store: PostgresStore, owner: str) -> str:
    now = datetime.now(UTC)
    run_id = uuid.uuid4().hex
    await store.create_run(
        NewRun(
            id=run_id,
            workflow="profile",
            version=None,
            kind=RunKind.DURABLE,
            idempotency_key=None,
            status=RunStatus.RUNNING,
            input="{}",
            owner_id=owner,
            parent_run_id=None,
            available_at=now,
            created_at=now,
        )
    )
    return run_id


async def _concurrent(store: PostgresStore, runs: int, steps: int) -> float:
    """Checkpoints per second of ``runs`` runs writing ``steps`` checkpoints each, at once
    (the store alone: what group commit allows before the engine's own cost)."""
    owner = "profile-owner"
    ids = [await _new_run(store, owner) for _ in range(runs)]

    async def one(run_id: str) -> None:
        for seq in range(steps):
            now = datetime.now(UTC)
            step = StepWrite(seq, f"s{seq}", StepStatus.COMPLETED, 1, "1", None, None, now, now)
            await store.checkpoint(run_id, owner, [step], Progress(), now)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for run_id in ids:
            tg.start_soon(one, run_id)
    return runs * steps / (time.perf_counter() - started)


async def _checkpoints(store: PostgresStore, run_id: str, owner: str, first: int, count: int):  # type: ignore[no-untyped-def]
    totals = []
    for seq in range(first, first + count):
        now = datetime.now(UTC)
        step = StepWrite(seq, f"step-{seq}", StepStatus.COMPLETED, 1, "1", None, None, now, now)
        _current.clear()
        started = time.perf_counter()
        await store.checkpoint(run_id, owner, [step], Progress(), now)
        total = time.perf_counter() - started
        totals.append(total)
        for phase, spent in _current.items():
            PHASES[phase].append(spent)
        PHASES["python"].append(total - sum(_current.values()))
    return totals


async def _main(url: str, count: int) -> None:
    area = Scratch(url)
    try:
        store, run_id, owner = await _setup(area)
        try:
            await _checkpoints(store, run_id, owner, 0, 200)  # warm-up: statements prepared
            _instrument(store)
            PHASES.clear()
            totals = await _checkpoints(store, run_id, owner, 200, count)
            us = 1e6
            print(f"{count} lone checkpoints, one completed step each (medians, us):")
            print(f"  total              {statistics.median(totals) * us:8.1f}")
            for phase, samples in sorted(PHASES.items(), key=lambda p: -statistics.median(p[1])):
                print(f"  {phase:18} {statistics.median(samples) * us:8.1f}")
            print(f"  checkpoints/s      {count / sum(totals):8.1f}")
            profiler = cProfile.Profile()
            profiler.enable()
            await _checkpoints(store, run_id, owner, 200 + count, count)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            print("\ncProfile, by own time (the same loop again):")
            print(out.getvalue())
            rate = await _concurrent(store, 200, 10)
            print(f"200 runs x 10 checkpoints at once (store only): {rate:.0f} checkpoints/s")
        finally:
            await store.close()
        baseline = await baseline_commit_us(area)
        print(f"one BEGIN; INSERT; COMMIT over psycopg async: {baseline:.1f} us")
    finally:
        area.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url", nargs="?", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    anyio.run(_main, args.url, args.count)


if __name__ == "__main__":
    main()
