"""The SQLite WAL file's size under a long write load, through the public API.

Not part of the test suite (``tests/store/test_sqlite_connections.py`` checks the
bound on a shorter load). Runs, on a fresh file in a temporary directory, runs of
100 trivial steps from several concurrent tasks, with a reader listing runs and
polling the change token every 5 ms, until ``--steps`` step checkpoints are
committed; it samples the -wal file's size after every run and poll, and prints
one JSON line: the largest size seen, the size at the end (before closing), the
checkpointer's counters and the steps per second::

    .venv/bin/python scripts/wal_size.py --steps 200000 --runners 8 [--no-fast-path]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from runtime import Runtime, create_step, create_workflow
from runtime.store.sqlite import SqliteStore


def _chain(length: int) -> Any:
    async def bump(value: int) -> int:
        return value + 1

    steps = [create_step(f"step-{i}", bump) for i in range(length)]

    def flow(input: Any) -> Any:
        value = input["start"]
        for step in steps:
            value = step(value)
        return value

    return create_workflow("wal-load", flow)


def _wal_size(db: Path) -> int:
    try:
        return os.stat(f"{db}-wal").st_size
    except FileNotFoundError:
        return 0


async def measure(
    total: int, runners: int, fast_path: bool = True, steps: int = 100
) -> dict[str, Any]:
    """The figures for ``total`` step checkpoints from ``runners`` concurrent tasks."""
    workflow = _chain(steps)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "wal.db"
        largest, done = 0, 0
        query = "" if fast_path else "?fast_path=off"
        async with Runtime(database=f"sqlite:///{db}{query}") as rt:
            store = rt.store
            if not isinstance(store, SqliteStore) or store.checkpointer is None:
                raise SystemExit("the store is not a SQLite file")

            async def runner() -> None:
                nonlocal done, largest
                while done < total:
                    await workflow(rt.container).run(input={"start": 0})
                    done += steps
                    largest = max(largest, _wal_size(db))

            async def poller() -> None:
                nonlocal largest
                while True:
                    await store.list_runs(workflow="wal-load", limit=20)
                    await store.change_token()
                    largest = max(largest, _wal_size(db))
                    await anyio.sleep(0.005)

            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(poller)
                async with anyio.create_task_group() as runs:
                    for _ in range(runners):
                        runs.start_soon(runner)
                tg.cancel_scope.cancel()
            elapsed = time.perf_counter() - started
            at_end = _wal_size(db)
            stats = store.checkpointer.stats
        return {
            "step_checkpoints": done,
            "steps_per_s": round(done / elapsed, 1),
            "wal_mb_max": round(largest / 2**20, 2),
            "wal_mb_at_end": round(at_end / 2**20, 2),
            "wal_mb_after_close": round(_wal_size(db) / 2**20, 2),
            "checkpoints": stats.checkpoints,
            "restarts": stats.restarts,
            "restarts_busy": stats.busy,
            "checkpoint_failures": stats.failures,
            "checkpoint_ms_longest": round(stats.longest * 1000, 1),
            "restart_ms_longest": round(stats.longest_restart * 1000, 1),
            "wal_frames_last_check": stats.frames,
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="step checkpoints in all")
    parser.add_argument("--runners", type=int, default=8, help="runs in flight at once")
    parser.add_argument(
        "--no-fast-path", action="store_true", help="every commit on the writer's thread"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.runners < 1:
        parser.error("--steps and --runners must be at least 1")
    print(json.dumps(anyio.run(measure, args.steps, args.runners, not args.no_fast_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
