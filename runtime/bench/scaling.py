"""Two ``runtime start`` processes against one: the concurrent throughput of the service.

On PostgreSQL the service scales out: processes on one database share its queue
(claims with ``FOR UPDATE SKIP LOCKED``). This measures how much a second process
adds. For each of one and two processes, on a scratch schema of its own:

1. ``RUNS`` runs of ``bench_scale`` (``STEPS`` ``ctx.step`` steps) are enqueued
   while no service runs;
2. the processes start (each with ``CONCURRENCY`` runs in hand at most) while the
   project's ``gate`` file exists: each claims its share of runs, whose first step
   waits for the gate, so no process gets a head start while the other boots;
3. once every process holds its share, the gate is removed; the throughput is
   ``RUNS * STEPS`` over the time from then to the last run's ``ended_at``.

``two_process_ratio`` is two processes' steps/s over one's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import psycopg

from runtime.bench.figures import measure
from runtime.bench.processes import SERVICE_DEADLINE, Service
from runtime.bench.scratch import Scratch
from runtime.config import parse_database_url
from runtime.errors import StoreError
from runtime.service import Runtime

WORKFLOW = "bench_scale"
RUNS = 1000
STEPS = 10
CONCURRENCY = 100
"""Runs each process holds at most (``RUNTIME_CONCURRENCY``): enough that one process
is bound by its CPU and the database, not by its slots."""
ENQUEUE_LANES = 20
POLL = 0.02

_WORKFLOW_MODULE = '''"""Trivial steps; the first waits while the project's ``gate`` file exists."""

from pathlib import Path

import anyio

from runtime import WorkflowContext, workflow

GATE = Path(__file__).resolve().parent.parent / "gate"


async def _first(value: int) -> int:
    while GATE.exists():
        await anyio.sleep({poll})
    return value + 1


async def _bump(value: int) -> int:
    return value + 1


@workflow(name="{name}")
async def bench_scale(ctx: WorkflowContext[dict]) -> int:
    value = await ctx.step("step-0", _first, 0)
    for i in range(1, {steps}):
        value = await ctx.step(f"step-{{i}}", _bump, value)
    return value
'''


def write_project(root: Path) -> Path:
    """A scratch project whose service knows ``bench_scale``."""
    (root / "workflows").mkdir(parents=True, exist_ok=True)
    (root / "runtime.toml").write_text(
        'log_format = "json"\nlog_level = "info"\nshutdown_grace = 10\nretention = 0\n'
    )
    (root / "workflows" / "__init__.py").write_text("")
    (root / "workflows" / "bench_scale.py").write_text(
        _WORKFLOW_MODULE.format(poll=POLL, name=WORKFLOW, steps=STEPS)
    )
    return root


def scaling(project: Path, url_for: Callable[[str], str]) -> dict[str, float]:
    """Steps/s of one process and of two, each on a fresh schema from ``url_for``."""
    one = steps_per_s(project, url_for("scale1"), processes=1)
    two = steps_per_s(project, url_for("scale2"), processes=2)
    return {
        "one_process_steps_per_s": round(one, 1),
        "two_process_steps_per_s": round(two, 1),
        "two_process_ratio": round(two / one, 3),
    }


def steps_per_s(project: Path, url: str, *, processes: int) -> float:
    """Steps per second ``processes`` services drain ``RUNS`` gated runs at."""
    parsed = parse_database_url(url)
    schema = parsed.options["schema"]
    gate = project / "gate"
    gate.touch()
    anyio.run(_enqueue, project, url)
    services: list[Service] = []
    try:
        for i in range(processes):
            services.append(Service(project, url, f"scale{processes}-{i}", CONCURRENCY))
        for service in services:
            service.ready_at()
        held = min(RUNS, CONCURRENCY * processes)
        _wait(parsed.path, schema, services, "running", held, "every process to hold its runs")
        opened = time.time()
        gate.unlink()
        _wait(parsed.path, schema, services, "completed", RUNS, "the runs to finish")
        last = _last_ended(parsed.path, schema)
    except BaseException:
        for service in services:
            if service.process.poll() is None:
                service.kill()
        raise
    finally:
        gate.unlink(missing_ok=True)
    for service in services:
        service.stop()
    return RUNS * STEPS / max(last - opened, 1e-3)


async def _enqueue(project: Path, url: str) -> None:
    async with Runtime.from_project(project, database=url, background=False) as rt:
        left = [RUNS]

        async def lane() -> None:
            while left[0] > 0:
                left[0] -= 1
                await rt.workflows.run(WORKFLOW, {})

        async with anyio.create_task_group() as tg:
            for _ in range(ENQUEUE_LANES):
                tg.start_soon(lane)


def _counts(conninfo: str, schema: str) -> dict[str, int]:
    with psycopg.connect(conninfo, autocommit=True) as db:
        rows = db.execute(
            f"SELECT status, count(*) FROM {schema}.runs WHERE workflow = %s GROUP BY status",
            (WORKFLOW,),
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def _wait(
    conninfo: str, schema: str, services: list[Service], status: str, wanted: int, what: str
) -> None:
    deadline = time.monotonic() + SERVICE_DEADLINE
    while time.monotonic() < deadline:
        counts = _counts(conninfo, schema)
        if counts.get("failed") or counts.get("canceled"):
            raise StoreError(f"benchmark runs did not complete ({counts}):\n{services[0].tail()}")
        if counts.get(status, 0) >= wanted:
            return
        for service in services:
            service.check_alive(what)
        time.sleep(POLL)
    raise StoreError(f"timed out waiting for {what}:\n{services[0].tail()}")


def _last_ended(conninfo: str, schema: str) -> float:
    with psycopg.connect(conninfo, autocommit=True) as db:
        row = db.execute(
            f"SELECT max(ended_at) FROM {schema}.runs WHERE workflow = %s", (WORKFLOW,)
        ).fetchone()
    if row is None or row[0] is None:
        raise StoreError("no benchmark run has ended")
    return float(row[0].timestamp())


def measure_postgres(
    area: Scratch, *, with_cron: bool = True, with_processes: bool = True
) -> dict[str, float]:
    """``runtime bench``'s figures on ``area``'s scratch schemas, the two-process ratio too.

    The caller drops the schemas (``with scratch(url) as area``), whatever happens here.
    """
    figures = anyio.run(lambda: measure(with_cron=with_cron, postgres=area))
    if with_processes:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            figures.update(scaling(write_project(Path(tmp)), area.url))
    return figures
