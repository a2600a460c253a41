"""The peer's figures for ``runtime bench``: DBOS Transact on a SQLite system database.

Not part of the test suite, and not run with this project's venv: DBOS goes in a
scratch venv outside the repository, and this script runs with that venv's python::

    python3 -m venv /work/dbos-venv && /work/dbos-venv/bin/pip install dbos
    /work/dbos-venv/bin/python scripts/bench_peer.py

It measures what ``runtime bench`` measures, the same way: 200 workflows of 10
trivial steps one after another (``steps_per_s_sequential``), the same 200
started at once (``steps_per_s_concurrent``), and start to result of a 1-step
workflow over 100 runs (``latency_ms_p50``/``p95``), with async workflows and
steps on one event loop, on a fresh SQLite file in a temporary directory. It
prints one JSON line. Run it right after ``runtime bench --runs 3 --json`` on
the same machine: only figures taken side by side compare.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

STEPS = 10
RUNS = 200
LATENCY_RUNS = 100


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


async def _measure() -> dict[str, Any]:
    for _ in range(5):  # warm-up, as runtime bench does
        await chain(0)
        await single(0)
    sequential = await _sequential()
    concurrent = await _concurrent()
    latencies = await _latencies()
    total = RUNS * STEPS
    return {
        "steps_per_s_sequential": round(total / sequential, 1),
        "steps_per_s_concurrent": round(total / concurrent, 1),
        "latency_ms_p50": round(statistics.median(latencies), 3),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config: DBOSConfig = {
            "name": "bench-peer",
            "system_database_url": f"sqlite:///{Path(tmp) / 'dbos.sqlite'}",
        }
        DBOS(config=config)
        DBOS.launch()
        try:
            figures = asyncio.run(_measure())
        finally:
            DBOS.destroy()
    figures["peer"] = f"dbos {version('dbos')}, SQLite with its default settings"
    figures["python"] = sys.version.split()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
