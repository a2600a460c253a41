"""``runtime bench``: steps, latency, the event bus, cron lag and memory on this machine.

Every figure is measured on a fresh database, through the public API
(``wf(container).run()``), so each step pays its full checkpoint: a committed
transaction before the next step starts. The database is a fresh SQLite file (WAL
mode) in a temporary directory per measurement, or, with ``--database
postgresql://...``, a fresh scratch schema per measurement (``runtime.bench.scratch``),
dropped at the end; on PostgreSQL, ``two_process_ratio`` is the concurrent
throughput of two ``runtime start`` processes over one's (``runtime.bench.scaling``).

``loop_stall_ms_max`` is how late a 1 ms ticker, running next to the
sequential and concurrent runs, was woken at worst: the longest any run kept
the event loop to itself. ``concurrent_in_flight_max`` is how many of the
concurrent runs were between their first step and their last at once: 1 if each
ran to its end before the next began, up to ``RUNS`` if they all interleaved.

``baseline_commit_us`` is the yardstick measured in the same run: one
insert-and-commit through aiosqlite's plain statement API on the same machine
and disk (on PostgreSQL: ``BEGIN; INSERT; COMMIT`` over psycopg's async
connection, the store's own kind). ``step_overhead_vs_commit`` (a step's cost
over that) is the figure that holds when the machine is busy, because both sides slow down together.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from runtime.bench.scratch import Scratch
from runtime.bench.scratch import baseline_commit_us as pg_baseline_commit_us
from runtime.container import Container
from runtime.sdk.composition import CompositionWorkflow, create_workflow
from runtime.sdk.durable import DurableWorkflow, WorkflowContext, workflow
from runtime.sdk.specs import Job, JobConfig, Subscriber, SubscriberArgs, SubscriberConfig
from runtime.sdk.steps import StepDefinition, create_step
from runtime.service import Runtime
from runtime.store.sqlite_core import baseline_commit_us

Urls = Callable[[str], str]
"""A fresh database's URL for the measurement named by its argument."""

STEPS = 10
RUNS = 200
LATENCY_RUNS = 100
QUEUE_RUNS = 100
EMIT_LATENCY_EVENTS = 200
THROUGHPUT_EVENTS = 5000
EMITTERS = 50
CRON_FIRINGS = 8


class _InFlight:
    """How many runs were under way at once: between their first step and their last."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def began(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def ended(self) -> None:
        self.now -= 1


def _trivial_step(index: int, mark: Callable[[], None] | None = None) -> StepDefinition:
    async def invoke(value: int) -> int:
        if mark is not None:
            mark()
        return value + 1

    return create_step(f"step-{index}", invoke)


def _chain(name: str, length: int, in_flight: _InFlight | None = None) -> CompositionWorkflow:
    """``length`` trivial steps; with ``in_flight``, the first and last steps count the run."""
    marks: dict[int, Callable[[], None]] = {}
    if in_flight is not None:
        marks = {0: in_flight.began, length - 1: in_flight.ended}
    steps = [_trivial_step(i, marks.get(i)) for i in range(length)]

    def constructor(input: Any) -> Any:
        value = input["start"]
        for step in steps:
            value = step(value)
        return value

    return create_workflow(name, constructor)


async def _sequential(rt: Runtime, wf: CompositionWorkflow) -> float:
    started = time.perf_counter()
    for _ in range(RUNS):
        await wf(rt.container).run(input={"start": 0})
    return time.perf_counter() - started


async def _concurrent(rt: Runtime, wf: CompositionWorkflow) -> float:
    """Seconds for ``RUNS`` runs started at once."""
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


class _StallWatch:
    """A 1 ms ticker: how much later than asked the event loop woke it, at worst."""

    TICK = 0.001

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last = time.perf_counter()
        while True:
            await anyio.sleep(self.TICK)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - self.TICK)
            last = now


async def _latencies(rt: Runtime, wf: CompositionWorkflow) -> list[float]:
    samples = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        await wf(rt.container).run(input={"start": 0})
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


async def _bus(url: str, http: str | None = None) -> dict[str, float]:
    """Emit-to-handler latency and delivered events per second, through the durable bus."""
    latencies: list[float] = []
    received = anyio.Event()
    counted = [0]
    target = [0]
    done = anyio.Event()

    async def ping(args: SubscriberArgs) -> None:
        latencies.append((time.perf_counter() - args.event.data["t"]) * 1000)
        received.set()

    async def count(args: SubscriberArgs) -> None:
        counted[0] += 1
        if counted[0] == target[0]:
            done.set()

    subscribers = [
        Subscriber("bench-ping", ping, SubscriberConfig("bench.ping")),
        Subscriber("bench-count", count, SubscriberConfig("bench.count")),
    ]
    async with Runtime(database=url, subscribers=subscribers, retention=0, http=http) as rt:
        for i in range(EMIT_LATENCY_EVENTS + 20):
            received = anyio.Event()
            await rt.emit("bench.ping", {"t": time.perf_counter()})
            with anyio.fail_after(10):
                await received.wait()
            if i < 20:  # warm-up
                latencies.clear()
        target[0] = THROUGHPUT_EVENTS
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for emitter in range(EMITTERS):
                tg.start_soon(_emit_many, rt, THROUGHPUT_EVENTS // EMITTERS, emitter)
        with anyio.fail_after(60):
            await done.wait()
        elapsed = time.perf_counter() - started
    return {
        "emit_latency_ms_p50": round(statistics.median(latencies), 3),
        "emit_latency_ms_p99": round(_quantile(latencies, 0.99), 3),
        "events_per_s": round(THROUGHPUT_EVENTS / elapsed, 1),
    }


async def _emit_many(rt: Runtime, count: int, emitter: int) -> None:
    for i in range(count):
        await rt.emit("bench.count", {"emitter": emitter, "i": i})


async def _queue(rt: Runtime, single: CompositionWorkflow) -> list[float]:
    """Start-to-result of a 1-step background run through the queue and the worker."""
    samples = []
    for _ in range(QUEUE_RUNS):
        started = time.perf_counter()
        handle = await rt.workflows.run(single, {"start": 0})
        await handle.result(timeout=10)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _durable_chain(name: str, length: int) -> DurableWorkflow:
    async def bump(value: int) -> int:
        return value + 1

    async def chain(ctx: WorkflowContext[Any]) -> int:
        value: int = ctx.input["start"]
        for i in range(length):
            value = await ctx.step(f"step-{i}", bump, value)
        return value

    return workflow(name=name)(chain)


async def _durable(url: str, http: str | None = None) -> float:
    """Steps per second of 200 background runs of 10 ``ctx.step`` steps, all enqueued at once."""
    chain = _durable_chain("bench-durable", STEPS)
    async with Runtime(database=url, workflows=[chain], retention=0, http=http) as rt:
        for _ in range(5):  # warm-up
            await (await rt.workflows.run(chain, {"start": 0})).result(timeout=10)
        started = time.perf_counter()
        handles = [await rt.workflows.run(chain, {"start": 0}) for _ in range(RUNS)]
        for handle in handles:
            if await handle.result(timeout=60) != STEPS:
                raise AssertionError("durable benchmark workflow returned a wrong result")
        elapsed = time.perf_counter() - started
    return RUNS * STEPS / elapsed


async def _cron(url: str, http: str | None = None) -> dict[str, float]:
    """How late every-second cron firings start (the job's handler runs) after nominal time."""
    lags: list[float] = []
    enough = anyio.Event()

    started = datetime.now(UTC)

    async def tick(container: Container) -> None:
        now = datetime.now(UTC)
        nominal = now.replace(microsecond=0)
        if nominal <= started:
            return  # a catch-up of the second the runtime started in, not an on-time firing
        lags.append((now - nominal).total_seconds() * 1000)
        if len(lags) >= CRON_FIRINGS:
            enough.set()

    job = Job(tick, JobConfig(name="bench-tick", schedule="* * * * * *"))
    async with Runtime(database=url, jobs=[job], retention=0, http=http):
        with anyio.fail_after(CRON_FIRINGS + 10):
            await enough.wait()
    return {
        "cron_lag_ms_p50": round(statistics.median(lags), 3),
        "cron_lag_ms_p99": round(_quantile(lags, 0.99), 3),
    }


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def measure(
    directory: Path | None = None,
    *,
    with_cron: bool = True,
    fast_path: bool = True,
    postgres: Scratch | None = None,
    http: str | None = None,
) -> dict[str, float]:
    """Run every measurement once and return the figures.

    The cron measurement waits for real firings (about ``CRON_FIRINGS`` seconds).
    ``fast_path=False`` measures the store without its fast path (every transaction
    on aiosqlite's thread), for comparison. With ``postgres``, every measurement runs
    on a scratch schema of its own there (the caller drops them), not on SQLite. With
    ``http`` (``HOST:PORT``), every measured ``Runtime`` also serves the HTTP API and
    the dashboard there, as ``runtime start --http`` does (``runtime.bench.http_load``).
    """
    if postgres is not None:
        return await _measure(
            postgres.url, lambda: pg_baseline_commit_us(postgres), with_cron, http
        )
    query = "" if fast_path else "?fast_path=off"
    with tempfile.TemporaryDirectory(dir=directory) as tmp:

        def sqlite(label: str) -> str:
            return f"sqlite:///{Path(tmp) / label}.db{query}"

        return await _measure(
            sqlite, lambda: baseline_commit_us(str(Path(tmp) / "baseline.db")), with_cron, http
        )


async def _measure(
    urls: Urls,
    baseline_us: Callable[[], Awaitable[float]],
    with_cron: bool,
    http: str | None = None,
) -> dict[str, float]:
    chain = _chain("bench-chain", STEPS)
    in_flight = _InFlight()
    counted = _chain("bench-counted", STEPS, in_flight)
    single = _chain("bench-single", 1)
    async with Runtime(database=urls("bench"), retention=0, http=http) as rt:
        # Warm up: imports, first statements compiled, the file grown.
        for _ in range(5):
            await chain(rt.container).run(input={"start": 0})
            await single(rt.container).run(input={"start": 0})
            await counted(rt.container).run(input={"start": 0})
        in_flight.most = 0
        watch = _StallWatch()
        async with anyio.create_task_group() as tg:
            await tg.start(watch.run)
            sequential = await _sequential(rt, chain)
            concurrent = await _concurrent(rt, counted)
            tg.cancel_scope.cancel()
        latencies = sorted(await _latencies(rt, single))
        queue = await _queue(rt, single)
    baseline = await baseline_us()
    bus = await _bus(urls("bus"), http)
    durable = await _durable(urls("durable"), http)
    cron = await _cron(urls("cron"), http) if with_cron else {}
    total_steps = RUNS * STEPS
    return {
        "steps_per_s_sequential": round(total_steps / sequential, 1),
        "step_overhead_us": round(sequential / total_steps * 1e6, 1),
        "baseline_commit_us": round(baseline, 1),
        "step_overhead_vs_commit": round(sequential / total_steps * 1e6 / baseline, 2),
        "steps_per_s_concurrent": round(total_steps / concurrent, 1),
        "concurrent_in_flight_max": in_flight.most,
        "loop_stall_ms_max": round(watch.worst * 1000, 3),
        "latency_ms_p50": round(statistics.median(latencies), 3),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 3),
        "queue_latency_ms_p50": round(statistics.median(queue), 3),
        "durable_fn_steps_per_s": round(durable, 1),
        **bus,
        **cron,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
