"""``runtime bench``: step throughput, start-to-result latency and memory on this machine.

Every figure is measured on a fresh SQLite file (WAL mode) in a temporary
directory, through the public API (``wf(container).run()``), so each step pays
its full checkpoint: a committed transaction before the next step starts.

``baseline_commit_us`` is the yardstick measured in the same run: one
insert-and-commit through aiosqlite's plain statement API on the same machine
and disk. ``step_overhead_vs_commit`` (a step's cost over that) is the figure
that holds when the machine is busy, because both sides slow down together.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from runtime.container import Container
from runtime.sdk.steps import StepDefinition, create_step
from runtime.sdk.workflows import WorkflowDefinition, create_workflow
from runtime.service import Runtime
from runtime.store.sqlite_core import baseline_commit_us

STEPS = 10
RUNS = 200
LATENCY_RUNS = 100


def _trivial_step(index: int) -> StepDefinition:
    async def invoke(value: int) -> int:
        return value + 1

    return create_step(f"step-{index}", invoke)


def _chain(name: str, length: int) -> WorkflowDefinition:
    steps = [_trivial_step(i) for i in range(length)]

    def constructor(input: Any) -> Any:
        value = input["start"]
        for step in steps:
            value = step(value)
        return value

    return create_workflow(name, constructor)


async def _sequential(rt: Runtime, wf: WorkflowDefinition) -> float:
    started = time.perf_counter()
    for _ in range(RUNS):
        await wf(rt.container).run(input={"start": 0})
    return time.perf_counter() - started


async def _concurrent(rt: Runtime, wf: WorkflowDefinition) -> float:
    container: Container = rt.container

    async def one() -> None:
        result = await wf(container).run(input={"start": 0})
        if result.result != STEPS:
            raise AssertionError(f"benchmark workflow returned {result.result!r}")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(RUNS):
            tg.start_soon(one)
    return time.perf_counter() - started


async def _latencies(rt: Runtime, wf: WorkflowDefinition) -> list[float]:
    samples = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        await wf(rt.container).run(input={"start": 0})
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def measure(directory: Path | None = None) -> dict[str, float]:
    """Run every measurement once and return the figures."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        chain = _chain("bench-chain", STEPS)
        single = _chain("bench-single", 1)
        async with Runtime(database=f"sqlite:///{Path(tmp) / 'bench.db'}") as rt:
            # Warm up: imports, first statements compiled, the file grown.
            for _ in range(5):
                await chain(rt.container).run(input={"start": 0})
                await single(rt.container).run(input={"start": 0})
            sequential = await _sequential(rt, chain)
            concurrent = await _concurrent(rt, chain)
            latencies = sorted(await _latencies(rt, single))
        baseline = await baseline_commit_us(str(Path(tmp) / "baseline.db"))
        total_steps = RUNS * STEPS
        return {
            "steps_per_s_sequential": round(total_steps / sequential, 1),
            "step_overhead_us": round(sequential / total_steps * 1e6, 1),
            "baseline_commit_us": round(baseline, 1),
            "step_overhead_vs_commit": round(sequential / total_steps * 1e6 / baseline, 2),
            "steps_per_s_concurrent": round(total_steps / concurrent, 1),
            "latency_ms_p50": round(statistics.median(latencies), 3),
            "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }
