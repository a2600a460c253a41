"""``runtime bench --api-runs N``: ``GET /api/runs`` on a database of N runs, as users hit it.

The database is seeded in bulk (``runtime.bench.seed``) to ``N`` runs of a realistic
mix, or reused when it holds that many already. Then the app the service serves
(:func:`runtime.web.app.build_app` over the store, as ``runtime start --http``
builds it) is served by :class:`runtime.web.server.HttpServer` (uvicorn) on a real
loopback socket, and an ``httpx`` client in the same process asks each of
:data:`SHAPES` in turn, one request at a time: every sample is a whole request
(connect kept alive, as a browser does), the client's own parsing of the JSON
included, so the figures are an upper bound on the server's part.

Each shape's first answer is checked (200, a full page where the mix has one, every
run matching the filter) before it is timed. The bar (issue 11): p50 <= 50 ms for
every shape. The dashboard's pages and the other lists (:data:`PAGES`) are timed the
same way on the same database, against the same bar, but ``/metrics``: a scrape
counts every status of every workflow, once every 15 s or so, and is reported without
a bar.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx

from runtime.bench.mix import RARE_STATUS
from runtime.bench.seed import (
    check_postgres,
    check_sqlite,
    count_postgres,
    count_sqlite,
    seed_postgres,
    seed_sqlite,
)
from runtime.clock import SystemClock
from runtime.config import HttpAddress, parse_database_url, redact
from runtime.errors import ConfigError, RuntimeBaseError, StoreError
from runtime.store import open_store
from runtime.web.app import build_app, store_source
from runtime.web.console import Console
from runtime.web.project import Project
from runtime.web.server import HttpServer

BAR_MS = 50.0
"""Issue 11's bar: each shape's p50, in milliseconds."""

SAMPLES = 20
"""Requests per shape in each round."""

WARM_UP = 3
"""Requests per shape before any is timed."""

COMMON = "order-processing"
"""The most frequent seeded workflow."""
SMALL = "refund"
"""The least frequent seeded workflow."""


@dataclass(frozen=True)
class Shape:
    """One request shape: ``params`` are the query's (name, value) pairs; ``after`` names
    the shape whose first page's ``next_cursor`` this one passes (a second page)."""

    name: str
    params: tuple[tuple[str, str], ...]
    after: str | None = None
    full: bool = True
    """The seeded mix fills this shape's page (at 2,000 runs or more): checked."""
    path: str = "/api/runs"
    """The path asked; ``{run_id}`` is the newest run's id."""
    bar: bool = True
    """Held to :data:`BAR_MS`."""

    def query(self, cursors: dict[str, str]) -> tuple[tuple[str, str], ...]:
        if self.after is None:
            return self.params
        return (*self.params, ("cursor", cursors[self.after]))


SHAPES: tuple[Shape, ...] = (
    Shape("no filter", ()),
    Shape("status=failed", (("status", "failed"),)),
    Shape(f"status={RARE_STATUS.value} (rare)", (("status", RARE_STATUS.value),), full=False),
    Shape(f"workflow={COMMON}", (("workflow", COMMON),)),
    Shape(
        f"workflow={SMALL}&status=failed", (("workflow", SMALL), ("status", "failed")), full=False
    ),
    Shape(
        f"workflow={SMALL}&status={RARE_STATUS.value}",
        (("workflow", SMALL), ("status", RARE_STATUS.value)),
        full=False,
    ),
    Shape("status=failed&status=canceled", (("status", "failed"), ("status", "canceled"))),
    Shape("page 2 (cursor)", (), after="no filter"),
    Shape(
        "status=failed&status=canceled, page 2",
        (("status", "failed"), ("status", "canceled")),
        after="status=failed&status=canceled",
    ),
    Shape("limit=100", (("limit", "100"),)),
)
"""What the dashboard and scripts ask: each filter, two statuses, a second page, a big page."""

PAGES: tuple[Shape, ...] = (
    Shape("page /", (), path="/"),
    Shape("page /?status=failed", (("status", "failed"),), path="/"),
    Shape(f"page /?workflow={SMALL}", (("workflow", SMALL),), path="/"),
    Shape("page /runs/{id}", (), path="/runs/{run_id}"),
    Shape("page /events", (), path="/events"),
    Shape("page /deliveries", (), path="/deliveries"),
    Shape("page /jobs", (), path="/jobs"),
    Shape("page /subscribers", (), path="/subscribers"),
    Shape("GET /api/events", (), path="/api/events"),
    Shape("GET /api/deliveries?status=dead", (("status", "dead"),), path="/api/deliveries"),
    Shape("GET /api/runs/{id}", (), path="/api/runs/{run_id}"),
    Shape("GET /metrics (no bar)", (), path="/metrics", bar=False),
)
"""The dashboard's pages over the same history, and the API's other lists and reads."""


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def _check(
    shape: Shape, query: tuple[tuple[str, str], ...], answer: httpx.Response
) -> dict[str, Any]:
    """The answer's JSON, checked against what the shape asked for.

    Raises:
        StoreError: not a 200, a page short of full where the mix fills one, or a run
            that does not match the filter.
    """
    if answer.status_code != 200:
        raise StoreError(f"GET /api/runs {shape.name}: {answer.status_code} {answer.text[:200]}")
    page: dict[str, Any] = answer.json()
    asked = dict(query)
    statuses = {value for name, value in query if name == "status"}
    limit = int(asked.get("limit", "50"))
    for run in page["runs"]:
        if statuses and run["status"] not in statuses:
            raise StoreError(f"GET /api/runs {shape.name}: a run has status {run['status']}")
        if "workflow" in asked and run["workflow"] != asked["workflow"]:
            raise StoreError(f"GET /api/runs {shape.name}: a run of {run['workflow']}")
    if shape.full and len(page["runs"]) != limit:
        raise StoreError(
            f"GET /api/runs {shape.name}: {len(page['runs'])} runs, not a full page of {limit}"
        )
    return page


async def _serve_and_ask(url: str, rounds: int, progress: Callable[[str], None]) -> list[Any]:
    store = await open_store(url)
    try:
        console = Console(store_source(store), Project.unknown(), SystemClock())
        server = HttpServer(build_app(console, token=None), HttpAddress("127.0.0.1", 0))
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            base = f"http://127.0.0.1:{server.port}"
            try:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    shapes = await _ask(client, rounds, progress)
            finally:
                server.drain()
    finally:
        await store.close()
    return shapes


async def _ask(
    client: httpx.AsyncClient, rounds: int, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    cursors: dict[str, str] = {}
    queries: dict[str, tuple[tuple[str, str], ...]] = {}
    rows: dict[str, int | None] = {}
    paths: dict[str, str] = {}
    newest = ""
    for shape in SHAPES:  # in order: a page-2 shape follows the shape it pages after
        query = shape.query(cursors)
        page = _check(shape, query, await client.get("/api/runs", params=query))
        if page["next_cursor"] is not None:
            cursors[shape.name] = page["next_cursor"]
        newest = newest or page["runs"][0]["id"]
        queries[shape.name] = query
        paths[shape.name] = shape.path
        rows[shape.name] = len(page["runs"])
        for _ in range(WARM_UP - 1):
            await client.get("/api/runs", params=query)
    for shape in PAGES:
        path = shape.path.replace("{run_id}", newest)
        answer = await client.get(path, params=shape.params)
        if answer.status_code != 200:
            raise StoreError(f"GET {path} {shape.name}: {answer.status_code} {answer.text[:200]}")
        queries[shape.name] = shape.params
        paths[shape.name] = path
        rows[shape.name] = None  # not a listing of runs
        for _ in range(WARM_UP - 1):
            await client.get(path, params=shape.params)
    every = (*SHAPES, *PAGES)
    timings: dict[str, list[float]] = {shape.name: [] for shape in every}
    for i in range(rounds):
        progress(f"round {i + 1}/{rounds}: {SAMPLES} requests of each of {len(every)} shapes")
        for _ in range(SAMPLES):
            for shape in every:
                started = time.perf_counter()
                answer = await client.get(paths[shape.name], params=queries[shape.name])
                timings[shape.name].append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise StoreError(f"GET {paths[shape.name]}: {answer.status_code}")
    return [
        {
            "shape": shape.name,
            "path": paths[shape.name],
            "query": str(httpx.QueryParams(queries[shape.name])),
            "rows": rows[shape.name],
            "samples": len(timings[shape.name]),
            "p50_ms": round(statistics.median(timings[shape.name]), 2),
            "p95_ms": round(_quantile(timings[shape.name], 0.95), 2),
            "max_ms": round(max(timings[shape.name]), 2),
            "pass": statistics.median(timings[shape.name]) <= BAR_MS if shape.bar else None,
        }
        for shape in every
    ]


def measure_api_runs(url: str, rounds: int, progress: Callable[[str], None]) -> list[Any]:
    """Each of :data:`SHAPES`: p50, p95 and max milliseconds of ``GET /api/runs`` over
    ``rounds`` rounds of :data:`SAMPLES` requests, against the database at ``url``.

    Raises:
        RuntimeBaseError: the store's, or :class:`StoreError` for a wrong answer.
    """
    try:
        shapes: list[Any] = anyio.run(_serve_and_ask, url, rounds, progress)
    except BaseExceptionGroup as group:
        leaves = group.exceptions
        if len(leaves) == 1 and isinstance(leaves[0], RuntimeBaseError):
            raise leaves[0] from None
        raise
    return shapes


def render(shapes: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Rows for the table: shape, rows, p50, p95, max, verdict."""
    return [
        (
            s["shape"],
            "" if s["rows"] is None else str(s["rows"]),
            f"{s['p50_ms']:g}",
            f"{s['p95_ms']:g}",
            f"{s['max_ms']:g}",
            "" if s["pass"] is None else "pass" if s["pass"] else "FAIL",
        )
        for s in shapes
    ]


DEFAULT_SCHEMA = "runtime_bench_api_runs"
"""The PostgreSQL schema the runs are seeded in when the URL names none (kept, to reuse)."""


async def _create(url: str) -> None:
    """Make (or migrate) the store's tables at ``url``, as any start would."""
    await (await open_store(url, create=True)).close()


def api_runs(
    runs: int,
    path: Path | None,
    database: str | None,
    *,
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Seed (or reuse) a database of ``runs`` runs and measure :data:`SHAPES` on it.

    On SQLite the file is ``path`` (kept, reused when it holds enough runs) or one in a
    temporary folder; with ``database`` (``postgresql://...``) the runs go to the
    schema the URL names, else to :data:`DEFAULT_SCHEMA` (kept, reused likewise).

    Raises:
        ConfigError: a URL that is not PostgreSQL's, or one naming the schema ``runtime``
            (a project's own: the benchmark never writes there).
    """
    if database is not None:
        parsed = parse_database_url(database)
        if parsed.scheme != "postgresql":
            raise ConfigError(f"--database {redact(database)}: only a postgresql:// URL")
        named = dict(parse_qsl(database.partition("?")[2])).get("schema")
        if named == "runtime":
            raise ConfigError(
                f"--database {redact(database)}: schema=runtime is a project's own; "
                f"name a schema for the benchmark (default {DEFAULT_SCHEMA})"
            )
        schema = named or DEFAULT_SCHEMA
        joiner = "&" if "?" in parsed.path else "?"
        url = f"{parsed.path}{joiner}schema={schema}"
        check_postgres(parsed.path, schema)
        anyio.run(_create, url)
        seeded = seed_postgres(parsed.path, schema, runs, progress)
        held = count_postgres(parsed.path, schema)
        shown = f"PostgreSQL {redact(database)}, schema {schema}"
        return _result(url, shown, held, seeded, rounds, progress, None)
    if path is None:
        with tempfile.TemporaryDirectory(prefix="bench-api-runs-") as tmp:
            return api_runs(runs, Path(tmp) / "runs.db", None, rounds=rounds, progress=progress)
    url = f"sqlite:///{path}"
    check_sqlite(str(path))
    anyio.run(_create, url)
    seeded = seed_sqlite(str(path), runs, progress)
    held = count_sqlite(str(path))
    return _result(url, f"SQLite {path}", held, seeded, rounds, progress, path)


def _result(
    url: str,
    shown: str,
    held: int,
    seeded: Any,
    rounds: int,
    progress: Callable[[str], None],
    path: Path | None,
) -> dict[str, Any]:
    progress(f"{shown}: {held:,} seeded runs; measuring GET /api/runs")
    shapes = measure_api_runs(url, rounds, progress)
    result: dict[str, Any] = {
        "database": shown,
        "runs": held,
        "seeding": {
            "seeded_runs": seeded.seeded,
            "seconds": round(seeded.seconds, 1),
            "runs_per_s": round(seeded.runs_per_s),
        },
        "rounds": rounds,
        "bar_ms": BAR_MS,
        "shapes": shapes,
        "pass": all(shape["pass"] is not False for shape in shapes),
    }
    if path is not None:
        result["file_mb"] = round(path.stat().st_size / (1024 * 1024), 1)
    return result
