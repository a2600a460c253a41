"""Soak: a service with a tiny retention through many runs; its file size must stay flat.

Not part of the test suite (it runs for minutes). It starts a ``Runtime`` on a
scratch SQLite file with ``retention`` of a few seconds and the pruner's interval
shortened to match, then drives runs of a few trivial steps through the public API,
``--concurrency`` at a time, each followed by an event that one subscriber receives
(so events and deliveries age and go too). Every ``--every`` seconds it prints one
line: runs finished, runs/s, rows kept, the file's pages (all, and free ones), the
file's size and its WAL's, and what the pruner removed. On a machine shared with others::

    nice -n 10 .venv/bin/python scripts/soak_retention.py --runs 300000

The size should level off once the first rounds have run: deleted rows' pages go to
SQLite's freelist and new rows reuse them (the file never shrinks; it need not grow).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from runtime import (
    Runtime,
    StepResponse,
    SubscriberArgs,
    SubscriberConfig,
    create_step,
    create_workflow,
    pruner,
)
from runtime.sdk.specs import Subscriber


@create_step("first")
async def first(input: dict[str, Any]) -> StepResponse:
    return StepResponse({"n": input["n"]})


@create_step("second")
async def second(value: dict[str, Any]) -> StepResponse:
    return StepResponse({"n": value["n"] + 1})


@create_step("third")
async def third(value: dict[str, Any]) -> StepResponse:
    return StepResponse(value["n"] * 2)


SOAK = create_workflow("soak", lambda input: third(second(first(input))))


async def received(args: SubscriberArgs) -> None:
    """The subscriber: a delivery that ends ``done`` at once."""


def figures(path: Path) -> dict[str, int]:
    """Rows kept and pages of the file, read on a connection of its own."""
    with sqlite3.connect(path) as db:
        found = {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("runs", "steps", "events", "deliveries")
        }
        found["pages"] = db.execute("PRAGMA page_count").fetchone()[0]
        found["free"] = db.execute("PRAGMA freelist_count").fetchone()[0]
    return found


def sizes_mb(path: Path) -> tuple[float, float]:
    """The database file's size and its WAL's, in MB."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size / 1e6, (wal.stat().st_size if wal.exists() else 0) / 1e6


async def soak(args: argparse.Namespace, path: Path) -> None:
    # Shortened for the soak: the service's defaults are 30 s and 5 minutes.
    pruner.FIRST_ROUND_AFTER = args.interval
    pruner.PRUNE_INTERVAL = args.interval
    subscriber = Subscriber("soak-audit", received, SubscriberConfig(event="soak.done"))
    runtime = Runtime(
        f"sqlite:///{path}",
        workflows=[SOAK],
        subscribers=[subscriber],
        retention=args.retention,
        concurrency=args.concurrency,
    )
    done = 0
    started = last_at = time.monotonic()
    last_done = 0
    async with runtime as rt:
        numbers = iter(range(args.runs))

        async def drive() -> None:
            nonlocal done
            for n in numbers:  # shared by the drivers: each takes the next number
                await SOAK(rt.container).run(input={"n": n})
                await rt.emit("soak.done", {"n": n})
                done += 1

        async def report() -> None:
            nonlocal last_at, last_done
            while True:
                await anyio.sleep(args.every)
                now = time.monotonic()
                found = await anyio.to_thread.run_sync(figures, path)
                removed = rt.pruner.removed if rt.pruner is not None else None
                print(
                    f"t={now - started:7.0f}s runs={done:8d} "
                    f"rate={(done - last_done) / (now - last_at):6.0f}/s "
                    f"kept runs={found['runs']:6d} steps={found['steps']:6d} "
                    f"events={found['events']:6d} deliveries={found['deliveries']:6d} "
                    f"pages={found['pages']:6d} free={found['free']:6d} "
                    f"file={sizes_mb(path)[0]:7.2f}MB wal={sizes_mb(path)[1]:7.2f}MB "
                    f"pruned runs={removed.runs if removed else 0}",
                    flush=True,
                )
                last_at, last_done = now, done

        async with anyio.create_task_group() as tg:
            tg.start_soon(report)
            async with anyio.create_task_group() as drivers:
                for _ in range(args.concurrency):
                    drivers.start_soon(drive)
            tg.cancel_scope.cancel()
    file, wal = sizes_mb(path)
    took = time.monotonic() - started
    print(f"finished {done} runs in {took:.0f}s; file {file:.2f} MB, wal {wal:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300_000, help="runs to drive")
    parser.add_argument("--retention", type=float, default=5.0, help="seconds kept")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    parser.add_argument("--concurrency", type=int, default=8, help="runs at once")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between lines")
    parser.add_argument("--database", type=Path, help="the file (default: a scratch one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.database or Path(scratch) / "soak.db"
        anyio.run(soak, args, path)


if __name__ == "__main__":
    main()
