"""The peer's figures for ``runtime bench``: DBOS Transact on SQLite or on PostgreSQL.

Not part of the test suite, and not run with this project's venv: DBOS goes in a
scratch venv outside the repository, and this script runs with that venv's python::

    python3 -m venv /work/dbos-venv && /work/dbos-venv/bin/pip install dbos
    /work/dbos-venv/bin/python scripts/bench_peer.py

It measures what ``runtime bench`` measures, the same way: 200 workflows of 10
trivial steps one after another (``steps_per_s_sequential``), the same 200
started at once (``steps_per_s_concurrent``), start to result of a 1-step
workflow over 100 runs (``latency_ms_p50``/``p95``), and of a 1-step workflow
enqueued on a DBOS queue (``queue_latency_ms_p50``; the queue and the handle's
wait for the result poll every 10 ms, not every second as by default, so the
figure is the peer's best), with async workflows and
steps on one event loop, on a fresh SQLite file in a temporary directory. It
prints one JSON line. Run it right after ``runtime bench --runs 3 --json`` on
the same machine: only figures taken side by side compare.

With ``--database postgresql://user@host/db`` (what ``runtime bench --database``
takes), DBOS's system database is that PostgreSQL database, its tables in a scratch
schema (``dbos_bench_<random>``, DBOS's ``dbos_system_schema``) dropped at the end,
even on failure or Ctrl-C; the URL's password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import psycopg
from dbos import DBOS, DBOSConfig, Queue

STEPS = 10
RUNS = 200
LATENCY_RUNS = 100
QUEUE_RUNS = 100
QUEUE_POLL = 0.01


@DBOS.step()
async def bump(value: int) -> int:
    return value + 1


@DBOS.workflow()
async def chain(start: int) -> int:
    value = start
    for _ in range(STEPS):
        value = await bump(value)
    return value


@DBOS.workflow()
async def single(start: int) -> int:
    return int(await bump(start))


async def _sequential() -> float:
    started = time.perf_counter()
    for _ in range(RUNS):
        await chain(0)
    return time.perf_counter() - started


async def _concurrent() -> float:
    async def one() -> None:
        if await chain(0) != STEPS:
            raise AssertionError("benchmark workflow returned a wrong result")

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(RUNS):
            tg.create_task(one())
    return time.perf_counter() - started


async def _latencies() -> list[float]:
    samples = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        await single(0)
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)


async def _queued(queue: Queue) -> list[float]:
    samples = []
    for _ in range(QUEUE_RUNS):
        started = time.perf_counter()
        handle = await queue.enqueue_async(single, 0)
        await handle.get_result(polling_interval_sec=QUEUE_POLL)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _measure(queue: Queue) -> dict[str, Any]:
    for _ in range(5):  # warm-up, as runtime bench does
        await chain(0)
        await single(0)
        await (await queue.enqueue_async(single, 0)).get_result(polling_interval_sec=QUEUE_POLL)
    sequential = await _sequential()
    concurrent = await _concurrent()
    latencies = await _latencies()
    queued = await _queued(queue)
    total = RUNS * STEPS
    return {
        "steps_per_s_sequential": round(total / sequential, 1),
        "steps_per_s_concurrent": round(total / concurrent, 1),
        "latency_ms_p50": round(statistics.median(latencies), 3),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 3),
        "queue_latency_ms_p50": round(statistics.median(queued), 3),
    }


def _run(config: DBOSConfig) -> dict[str, Any]:
    DBOS(config=config)
    DBOS.launch()
    try:
        queue = DBOS.register_queue("bench-peer", polling_interval_sec=QUEUE_POLL)
        return asyncio.run(_measure(queue))
    finally:
        DBOS.destroy()


def _libpq_url(url: str) -> str:
    """``url`` without runtime's own ``schema`` option (DBOS gets its own schema)."""
    base, _, query = url.partition("?")
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "schema"]
    return f"{base}?{urlencode(kept)}" if kept else base


def _postgres(url: str) -> dict[str, Any]:
    conninfo = _libpq_url(url)
    schema = f"dbos_bench_{secrets.token_hex(6)}"
    config: DBOSConfig = {
        "name": "bench-peer",
        "system_database_url": conninfo,
        "dbos_system_schema": schema,
    }
    try:
        figures = _run(config)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    figures["peer"] = f"dbos {version('dbos')}, PostgreSQL (scratch schema, dropped)"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", help="a postgresql:// URL (default: a SQLite file)")
    args = parser.parse_args()
    if args.database is not None:
        if not args.database.startswith(("postgresql://", "postgres://")):
            parser.error("--database: only a postgresql:// URL")
        figures = _postgres(args.database)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            figures = _run(
                {
                    "name": "bench-peer",
                    "system_database_url": f"sqlite:///{Path(tmp) / 'dbos.sqlite'}",
                }
            )
        figures["peer"] = f"dbos {version('dbos')}, SQLite with its default settings"
    figures["python"] = sys.version.split()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
