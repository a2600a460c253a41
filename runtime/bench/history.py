"""``runtime bench --history N``: the same figures on an aged file and on a fresh one.

The aged file is grown through the public API to ``N`` finished runs of 10 steps,
each with one event and two deliveries (``runtime.bench.grow``); the fresh file
holds ``FRESH_RUNS`` such runs, just enough to page through. Both are measured in
the same process, one after the other, with the same code:

- in this process, on a ``Runtime`` opened on the file that knows the grown
  workflow and its two subscribers (as the service that made the history would):
  sequential and concurrent steps/s (``runtime.bench.figures``'s workloads), the ``-wal``
  file's size right after them (``wal_mb``), bytes the WAL grows by per trivial checkpoint
  (``wal_bytes_per_step``), a background 1-step run's start to result
  (``queue_latency_ms_p50``), the first page and a page deep in
  ``list_runs(workflow=...)``, how late a 1 ms ticker is woken while the runtime
  idles (``idle_stall_ms_max``), and events/s to one subscriber;
- on ``runtime start`` processes (``runtime.bench.processes``): start-up,
  SIGTERM-to-exit, idle CPU, and the drain rate after a SIGKILL.

``wal_bytes_per_step`` counts WAL frames, not the file's size: a read transaction
is held open on another connection while one run of ``WAL_STEPS`` trivial steps
runs, so no checkpoint can restart the WAL, and the frames appended (the WAL's
frame count, as ``PRAGMA wal_checkpoint(PASSIVE)`` reports it) times the frame size
(page size + 24), over ``WAL_STEPS``, is what one step's checkpoint wrote. A
checkpoint running meanwhile (on any thread) does not change the count.

Each measurement adds a few thousand runs and events of other workflows to the
aged file; the grown count (runs of ``history-chain``) does not move.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from runtime.bench.figures import (
    RUNS,
    STEPS,
    _bus,
    _chain,
    _concurrent,
    _InFlight,
    _queue,
    _sequential,
    _StallWatch,
)
from runtime.bench.grow import (
    GROWN_WORKFLOW,
    Growth,
    count_grown,
    exclusive,
    grow,
    grown_subscribers,
    grown_workflow,
)
from runtime.bench.processes import recovery_rate, service_figures, write_project
from runtime.errors import StoreError
from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.specs import SubscriberArgs
from runtime.service import Runtime
from runtime.store.base import Store

FRESH_RUNS = 100
WAL_STEPS = 200
WAL_ATTEMPTS = 5
LISTING_SAMPLES = 7
PAGE = 50
MB = 1024 * 1024

# (figure, "ratio" or "value", "<=" or ">=", limit): the bars.
BARS: tuple[tuple[str, str, str, float], ...] = (
    ("queue_latency_ms_p50", "ratio", "<=", 1.5),
    ("idle_cpu_pct", "value", "<=", 3.0),
    ("idle_stall_ms_max", "value", "<=", 10.0),
    ("events_per_s", "ratio", ">=", 0.8),
    ("recovery_runs_per_s", "ratio", ">=", 0.8),
    ("list_first_page_ms", "value", "<=", 20.0),
    ("list_deep_page_ms", "value", "<=", 20.0),
    ("startup_s", "ratio", "<=", 1.5),
    ("sigterm_exit_s", "ratio", "<=", 1.5),
    ("steps_per_s_sequential", "ratio", ">=", 0.8),
    ("steps_per_s_concurrent", "ratio", ">=", 0.8),
    ("wal_mb", "value", "<=", 16.0),
    ("wal_bytes_per_step", "value", "<=", 8192.0),
)
FIGURES = (*(bar[0] for bar in BARS), "emit_latency_ms_p50", "wal_restart_ms_max")


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


async def _in_process(path: Path, idle_seconds: float) -> dict[str, float]:
    chain = _chain("bench-chain", STEPS)
    counted = _chain("bench-counted", STEPS, _InFlight())
    single = _chain("bench-single", 1)
    long = _chain("bench-long", WAL_STEPS)
    cursor = _deep_cursor(path)
    known = grown_workflow()
    async with Runtime(
        database=_url(path), workflows=[known], subscribers=grown_subscribers(_ignore), retention=0
    ) as rt:
        for _ in range(5):  # warm-up: imports, statements compiled
            await chain(rt.container).run(input={"start": 0})
            await single(rt.container).run(input={"start": 0})
        sequential = await _sequential(rt, chain)
        concurrent = await _concurrent(rt, counted)
        wal_bytes = _size(Path(f"{path}-wal"))
        per_step = [await _wal_bytes_per_step(path, rt, long) for _ in range(3)]
        queue = await _queue(rt, single)
        first, deep = await _listings(rt.store, cursor)
        await anyio.sleep(1.0)  # past the last runs' own bookkeeping
        watch = _StallWatch()
        async with anyio.create_task_group() as tg:
            await tg.start(watch.run)
            await anyio.sleep(idle_seconds)
            tg.cancel_scope.cancel()
        # The most a writer may have waited for the WAL (a RESTART holds the write lock).
        checkpointer = getattr(rt.store, "checkpointer", None)
        restart = checkpointer.stats.longest_restart if checkpointer is not None else 0.0
    bus = await _bus(_url(path))
    total = RUNS * STEPS
    return {
        "steps_per_s_sequential": round(total / sequential, 1),
        "steps_per_s_concurrent": round(total / concurrent, 1),
        "wal_mb": round(wal_bytes / MB, 2),
        "wal_bytes_per_step": round(statistics.median(per_step)),
        "queue_latency_ms_p50": round(statistics.median(queue), 3),
        "list_first_page_ms": round(first, 3),
        "list_deep_page_ms": round(deep, 3),
        "idle_stall_ms_max": round(watch.worst * 1000, 3),
        "events_per_s": bus["events_per_s"],
        "emit_latency_ms_p50": bus["emit_latency_ms_p50"],
        "wal_restart_ms_max": round(restart * 1000, 3),
    }


async def _ignore(args: SubscriberArgs) -> None:
    return None


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def _wal_bytes_per_step(path: Path, rt: Runtime, long: CompositionWorkflow) -> float:
    """WAL bytes appended by one run of ``WAL_STEPS`` trivial steps, per step.

    A reader that began while the WAL was wholly copied does not hold it (it reads the
    database file), so the WAL may still start over meanwhile (seen as a restart, or as
    fewer frames than steps): then the count is taken again, a few times at most.
    """
    for _ in range(WAL_ATTEMPTS):
        reader = sqlite3.connect(path, isolation_level=None, timeout=30)
        counter = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            (page_size,) = reader.execute("PRAGMA page_size").fetchone()
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM workers").fetchone()  # pins the WAL
            restarts = _restarts(rt)
            before = _wal_frames(counter)
            result = await long(rt.container).run(input={"start": 0})
            after = _wal_frames(counter)
            restarted = _restarts(rt) != restarts
            reader.execute("COMMIT")
        finally:
            reader.close()
            counter.close()
        if result.result != WAL_STEPS:
            raise AssertionError(f"benchmark workflow returned {result.result!r}")
        # Every step's checkpoint appends at least one frame: a count short of that means
        # the WAL started over meanwhile (a restart whose count was not yet recorded).
        if after - before >= WAL_STEPS and not restarted:
            return float((after - before) * (page_size + 24) / WAL_STEPS)
    raise StoreError("the WAL started over during every count: cannot count its frames")


def _restarts(rt: Runtime) -> int:
    """WAL restarts the runtime's checkpointer has made so far (0 without one)."""
    checkpointer = getattr(rt.store, "checkpointer", None)
    return checkpointer.stats.restarts if checkpointer is not None else 0


def _wal_frames(db: sqlite3.Connection) -> int:
    """Frames in the WAL: what a passive checkpoint reports (SQLite's own count).

    Never by reading the ``-shm`` file: closing any descriptor of a database's files
    releases every POSIX lock this process holds on it, SQLite's connections' too.
    """
    (_, frames, _) = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


def _deep_cursor(path: Path) -> str | None:
    """The cursor of the page half-way down the grown workflow's listing.

    Built in the store's cursor form (``created_at|id`` of the row before the page)
    from the row at that depth; ``None`` when the listing has no second page.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        (count,) = db.execute(
            "SELECT count(*) FROM runs WHERE workflow = ?", (GROWN_WORKFLOW,)
        ).fetchone()
        row = db.execute(
            "SELECT created_at, id FROM runs WHERE workflow = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?",
            (GROWN_WORKFLOW, max(count // 2 - 1, 0)),
        ).fetchone()
    finally:
        db.close()
    if row is None or count <= PAGE:
        return None
    return f"{row[0]}|{row[1]}"


async def _listings(store: Store, cursor: str | None) -> tuple[float, float]:
    """Median milliseconds of the first page and of the page at ``cursor``."""

    async def timed(page_cursor: str | None) -> float:
        samples = []
        for _ in range(LISTING_SAMPLES):
            started = time.perf_counter()
            page = await store.list_runs(workflow=GROWN_WORKFLOW, limit=PAGE, cursor=page_cursor)
            samples.append((time.perf_counter() - started) * 1000)
            if len(page.runs) != PAGE:
                raise StoreError(f"a listing page held {len(page.runs)} runs, not {PAGE}")
        return statistics.median(samples)

    if cursor is None:
        raise StoreError(f"the listing of {GROWN_WORKFLOW} has no page past the first")
    return await timed(None), await timed(cursor)


def measure_file(
    path: Path, workdir: Path, *, idle_seconds: float, repeats: int
) -> dict[str, float]:
    """Every figure on one file (the service figures are medians of ``repeats``)."""
    figures = anyio.run(_in_process, path, idle_seconds)
    project = write_project(workdir / f"project-{path.stem}")
    figures.update(service_figures(project, path, idle_seconds=idle_seconds, repeats=repeats))
    rates = [recovery_rate(project, path) for _ in range(repeats)]
    figures["recovery_runs_per_s"] = round(statistics.median(rates), 1)
    return figures


def compare(aged: dict[str, float], fresh: dict[str, float]) -> dict[str, Any]:
    """Ratios to fresh and the issue's bars, each with its verdict."""
    ratio = {k: round(aged[k] / fresh[k], 3) if fresh[k] else None for k in aged}
    bars = []
    for figure, kind, sense, limit in BARS:
        value = ratio[figure] if kind == "ratio" else aged[figure]
        passed = value is not None and (value <= limit if sense == "<=" else value >= limit)
        shown = f"{sense} {limit:g}x fresh" if kind == "ratio" else f"{sense} {limit:g}"
        bars.append({"figure": figure, "bar": shown, "value": value, "pass": passed})
    return {"ratio": ratio, "bars": bars}


def history(
    runs: int,
    history_db: Path | None,
    *,
    repeats: int,
    idle_seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Grow (or reuse) the aged file, grow a fresh one, measure both ``repeats`` times."""
    if history_db is None:
        with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
            return _history(runs, Path(tmp) / "aged.db", Path(tmp), repeats, idle_seconds, progress)
    count_grown(history_db)  # not a runtime database: refused before a lock file is made
    with (
        exclusive(history_db),
        tempfile.TemporaryDirectory(dir=history_db.parent, prefix="bench-history-") as tmp,
    ):
        return _history(runs, history_db, Path(tmp), repeats, idle_seconds, progress)


def _history(
    runs: int,
    aged_path: Path,
    workdir: Path,
    repeats: int,
    idle_seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    fresh_path = workdir / "fresh.db"
    growth = anyio.run(grow, aged_path, runs, progress)
    anyio.run(grow, fresh_path, min(FRESH_RUNS, runs), progress)
    samples: dict[str, list[dict[str, float]]] = {"aged": [], "fresh": []}
    for i in range(repeats):
        for label, path in (("aged", aged_path), ("fresh", fresh_path)):
            progress(f"measuring the {label} file ({i + 1}/{repeats}): {path}")
            samples[label].append(measure_file(path, workdir, idle_seconds=idle_seconds, repeats=1))
    aged = _medians(samples["aged"])
    fresh = _medians(samples["fresh"])
    return {
        "history_runs": growth.runs,
        "growth": _growth(growth),
        "repeats": repeats,
        "aged": aged,
        "fresh": fresh,
        **compare(aged, fresh),
        "aged_file_mb": round(_size(aged_path) / MB, 1),
    }


def _medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(s[k] for s in samples), 3) for k in samples[0]}


def _growth(growth: Growth) -> dict[str, float]:
    return {
        "grown_runs": growth.grown,
        "seconds": round(growth.seconds, 1),
        "runs_per_s": round(growth.runs_per_s, 1),
    }


def render(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows for the table: figure, aged, fresh, ratio, bar, verdict."""
    bars = {b["figure"]: b for b in result["bars"]}
    rows: list[tuple[str, ...]] = []
    for figure in FIGURES:
        ratio = result["ratio"][figure]
        bar = bars.get(figure)
        verdict = ("pass" if bar["pass"] else "FAIL") if bar else ""
        shown_ratio = "-" if ratio is None else f"{ratio:g}"
        aged, fresh = f"{result['aged'][figure]:g}", f"{result['fresh'][figure]:g}"
        rows.append((figure, aged, fresh, shown_ratio, bar["bar"] if bar else "", verdict))
    return rows
