"""The figures of ``runtime bench --history`` taken on a real ``runtime start`` process.

- ``startup_s``: from starting the process to its ``runtime_started`` log line (the
  line's own timestamp), Python's start-up and imports included;
- ``sigterm_exit_s``: from SIGTERM to the process's exit;
- ``idle_cpu_pct``: user + system CPU time of the idle service over a few seconds
  (``/proc/<pid>/stat``), as a percentage of one core;
- ``recovery_runs_per_s``: a service holding ``RECOVERY_RUNS`` runs in the middle of a
  step (its concurrency raised to hold them all) is SIGKILLed; a new service with the
  default concurrency (10) drains them, a scan for recoverable runs per few runs.
  Runs over the time from the new service's worker registering (its ``workers``
  row's ``started_at``, written before its loops start) to the last recovered run's
  ``ended_at``.

The service runs a scratch project (its ``runtime.toml``, the recovery workflow, the
grown workflow and its two subscribers), pointed at the measured file with ``--database``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import anyio

from runtime.bench.grow import GROWN_EVENT, GROWN_SUBSCRIBERS
from runtime.errors import StoreError
from runtime.service import Runtime

RECOVER_WORKFLOW = "bench_recover"
RECOVERY_RUNS = 200
DRAIN_CONCURRENCY = 10
"""The drainer's concurrency: the default, whatever RUNTIME_CONCURRENCY says here."""
SERVICE_DEADLINE = 600.0
"""Seconds a service may take to start, to stop, to pick up or to drain runs."""

POLL = 0.01

_WORKFLOW_MODULE = '''"""Two steps; the second waits while the project's ``hold`` file exists."""

from pathlib import Path

import anyio

from runtime import WorkflowContext, workflow

HOLD = Path(__file__).resolve().parent.parent / "hold"


async def _one(value: int) -> int:
    return value + 1


async def _hold(value: int) -> int:
    if HOLD.exists():
        await anyio.sleep(3600)  # until the benchmark SIGKILLs the service
    return value + 1


@workflow(name="bench_recover")
async def bench_recover(ctx: WorkflowContext[dict]) -> int:
    value = await ctx.step("one", _one, 0)
    return await ctx.step("hold", _hold, value)
'''


_SUBSCRIBER_MODULE = '''"""A subscriber of the grown runs' event (it does nothing)."""

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    return None


config = SubscriberConfig(event="{event}", subscriber_id="{subscriber}")
'''


def write_project(root: Path) -> Path:
    """A scratch project for ``runtime start``: settings, the recovery workflow, and the
    grown workflow and subscribers (the service knows them, as the one that made them)."""
    (root / "workflows").mkdir(parents=True, exist_ok=True)
    (root / "runtime.toml").write_text(
        'log_format = "json"\nlog_level = "info"\nshutdown_grace = 10\nretention = 0\n'
    )
    (root / "workflows" / "__init__.py").write_text("")
    (root / "workflows" / "bench_recover.py").write_text(_WORKFLOW_MODULE)
    (root / "workflows" / "history_chain.py").write_text(
        '"""The grown runs\' workflow: the service knows it, as the one that made them."""\n\n'
        "from runtime.bench.grow import grown_workflow\n\nhistory_chain = grown_workflow()\n"
    )
    (root / "subscribers").mkdir(exist_ok=True)
    (root / "subscribers" / "__init__.py").write_text("")
    for subscriber in GROWN_SUBSCRIBERS:
        (root / "subscribers" / f"{subscriber.replace('-', '_')}.py").write_text(
            _SUBSCRIBER_MODULE.format(event=GROWN_EVENT, subscriber=subscriber)
        )
    return root


class Service:
    """One ``runtime start`` child, its output in a file of the project.

    ``database`` is a SQLite file or a database URL.
    """

    def __init__(
        self, project: Path, database: Path | str, name: str, concurrency: int | None = None
    ) -> None:
        self.log_path = project / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.launched = time.time()
        command = [sys.executable, "-m", "runtime", "--project", str(project)]
        url = database if isinstance(database, str) else f"sqlite:///{database}"
        command += ["--database", url, "start"]
        env = dict(os.environ)
        if concurrency is not None:
            env["RUNTIME_CONCURRENCY"] = str(concurrency)
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def ready_at(self) -> float:
        """Wait for the ``runtime_started`` line; the wall-clock time it carries."""
        deadline = time.monotonic() + SERVICE_DEADLINE
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"runtime_started"' in line:
                    return _timestamp(json.loads(line)["timestamp"])
            self.check_alive("start")
            time.sleep(POLL)
        raise StoreError(f"the service did not start in {SERVICE_DEADLINE} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        # After the command name: state is field 3, utime and stime are 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> float:
        """SIGTERM; seconds until the process exited."""
        sent = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(SERVICE_DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise StoreError(f"the service did not stop on SIGTERM:\n{self.tail()}") from None
        took = time.perf_counter() - sent
        self._log.close()
        if code != 0:
            raise StoreError(f"the service exited with {code} on SIGTERM:\n{self.tail()}")
        return took

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(SERVICE_DEADLINE)
        self._log.close()

    def check_alive(self, doing: str) -> None:
        if self.process.poll() is not None:
            raise StoreError(
                f"the service exited ({self.process.returncode}) during {doing}:\n{self.tail()}"
            )

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])


def service_figures(
    project: Path, database: Path, *, idle_seconds: float, repeats: int
) -> dict[str, float]:
    """Start-up, SIGTERM-to-exit (medians of ``repeats``) and idle CPU (the first start)."""
    startups: list[float] = []
    stops: list[float] = []
    idle_cpu = 0.0
    for i in range(repeats):
        service = Service(project, database, f"service-{i}")
        try:
            startups.append(service.ready_at() - service.launched)
            if i == 0:
                time.sleep(1.0)  # past the start-up's own work (first scans, schedules)
                before, began = service.cpu_seconds(), time.perf_counter()
                time.sleep(idle_seconds)
                used = service.cpu_seconds() - before
                idle_cpu = used / (time.perf_counter() - began) * 100
                service.check_alive("the idle measurement")
        except BaseException:
            service.kill()
            raise
        stops.append(service.stop())
    return {
        "startup_s": round(statistics.median(startups), 3),
        "sigterm_exit_s": round(statistics.median(stops), 3),
        "idle_cpu_pct": round(idle_cpu, 2),
    }


def recovery_rate(project: Path, database: Path) -> float:
    """Runs per second a new service drains after the one holding them was SIGKILLed."""
    hold = project / "hold"
    hold.touch()
    holder = Service(project, database, "holder", concurrency=RECOVERY_RUNS)
    try:
        holder.ready_at()
        ids = anyio.run(_enqueue, project, database)
        _wait(database, _HELD, ids, RECOVERY_RUNS, holder, "the runs to be held mid-step")
    finally:
        holder.kill()
        hold.unlink()
    drainer = Service(project, database, "drainer", concurrency=DRAIN_CONCURRENCY)
    try:
        drainer.ready_at()
        _wait(database, _ACTIVE, ids, 0, drainer, "the recovered runs to finish")
        began = _worker_started(database, drainer.process.pid)
        ended = _last_ended(database, ids)
    except BaseException:
        drainer.kill()
        raise
    drainer.stop()
    return RECOVERY_RUNS / max(ended - began, 1e-3)


async def _enqueue(project: Path, database: Path) -> list[str]:
    async with Runtime.from_project(
        project, database=f"sqlite:///{database}", background=False
    ) as rt:
        handles = [await rt.workflows.run(RECOVER_WORKFLOW, {}) for _ in range(RECOVERY_RUNS)]
    return [h.run_id for h in handles]


_HELD = (
    "SELECT count(*) FROM runs r JOIN steps s ON s.run_id = r.id "
    "WHERE r.id IN ({ids}) AND r.status = 'running' AND s.name = 'one' "
    "AND s.status = 'completed'"
)
_ACTIVE = (
    "SELECT count(*) FROM runs WHERE id IN ({ids}) "
    "AND status IN ('pending', 'running', 'sleeping', 'compensating')"
)


def _wait(
    database: Path, sql: str, ids: list[str], wanted: int, service: Service, what: str
) -> None:
    db = _reader(database)
    query = sql.format(ids=", ".join("?" * len(ids)))
    try:
        deadline = time.monotonic() + SERVICE_DEADLINE
        while time.monotonic() < deadline:
            if db.execute(query, ids).fetchone()[0] == wanted:
                return
            service.check_alive(what)
            time.sleep(POLL)
    finally:
        db.close()
    raise StoreError(f"timed out waiting for {what}:\n{service.tail()}")


def _last_ended(database: Path, ids: list[str]) -> float:
    db = _reader(database)
    try:
        rows: list[Any] = db.execute(
            f"SELECT max(ended_at), count(*) FROM runs WHERE id IN ({', '.join('?' * len(ids))}) "
            "AND status = 'completed'",
            ids,
        ).fetchall()
    finally:
        db.close()
    [(last, completed)] = rows
    if completed != len(ids):
        raise StoreError(f"{len(ids) - completed} recovered runs did not complete")
    return _timestamp(last)


def _worker_started(database: Path, pid: int) -> float:
    """When the service with ``pid`` registered its worker (before its loops start)."""
    db = _reader(database)
    try:
        row = db.execute("SELECT max(started_at) FROM workers WHERE pid = ?", (pid,)).fetchone()
    finally:
        db.close()
    if row is None or row[0] is None:
        raise StoreError(f"the service (pid {pid}) has no row in workers")
    return _timestamp(row[0])


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _reader(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
