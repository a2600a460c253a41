"""``runtime start`` (the long-lived service) and ``runtime bench`` (this machine's figures)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import anyio
import click

from runtime.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Context,
    echo_json,
    fail,
    pass_context,
    run_async,
    table,
)
from runtime.cli.payloads import Text
from runtime.config import parse_database_url, redact
from runtime.errors import ConfigError, RuntimeBaseError
from runtime.log import configure_logging

IDLE_SECONDS = 5.0
"""``--idle-seconds`` when not given."""


@click.command()
@click.option(
    "--http",
    "http",
    type=Text(non_empty=True),
    help="Also serve the HTTP API and the dashboard on HOST:PORT "
    "(overrides 'http' in runtime.toml); beyond loopback only with http_token set.",
)
@pass_context
def start(ctx: Context, http: str | None) -> None:
    """Run the service: worker, event dispatcher, scheduler, recovery (until SIGTERM/SIGINT).

    A project whose modules have problems does not start (exit 2, every problem listed).
    """
    from runtime.service import Runtime

    config = ctx.config()
    try:
        configure_logging(
            ctx.log_format or config.log_format,  # type: ignore[arg-type]
            (ctx.log_level or config.log_level).lower(),
        )
        options: dict[str, Any] = {}
        if ctx.database:
            options["database"] = ctx.database
        if http is not None:
            options["http"] = http
        runtime = Runtime.from_project(ctx.project, **options)
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE)
    run_async(runtime.serve)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
@click.option(
    "--runs",
    "repeat",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Repeat the whole measurement and report medians.",
)
@click.option(
    "--fast-path/--no-fast-path",
    default=True,
    show_default=True,
    help="Measure with (or without) the store's fast path, for comparison.",
)
@click.option(
    "--database",
    "database",
    type=Text(non_empty=True),
    help="Measure on this PostgreSQL database (postgresql://...), in scratch schemas "
    "created and dropped by the benchmark (never the project's own); with --api-runs, "
    "in the schema the URL names (default runtime_bench_api_runs), kept for reuse.",
)
@click.option(
    "--history",
    type=click.IntRange(1, 100_000_000),
    help="Grow a file to this many finished runs and measure it next to a fresh one.",
)
@click.option(
    "--history-db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --history: the grown file to keep and reuse (grown further if short).",
)
@click.option(
    "--idle-seconds",
    type=click.FloatRange(0.5, 600),
    help="With --history: how long the idle CPU and idle stall figures watch [default: 5].",
)
@click.option(
    "--http",
    "http",
    is_flag=True,
    help="Measure the figures with the HTTP API served and polled, and without, in "
    "alternating rounds; report the ratios (issue 11: within 10%).",
)
@click.option(
    "--api-runs",
    type=click.IntRange(1, 10_000_000),
    help="Seed a database of this many runs and time GET /api/runs (per filter shape) and the "
    "dashboard's pages on it.",
)
@click.option(
    "--api-runs-db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --api-runs: the SQLite file to keep and reuse (seeded further if short).",
)
def bench(
    as_json: bool,
    repeat: int,
    fast_path: bool,
    database: str | None,
    history: int | None,
    history_db: Path | None,
    idle_seconds: float | None,
    http: bool,
    api_runs: int | None,
    api_runs_db: Path | None,
) -> None:
    """Measure step throughput, start-to-result latency and memory on a fresh SQLite file.

    With --database postgresql://...: the same figures on PostgreSQL, each in a scratch
    schema (runtime_bench_<random>_<figure>) dropped at the end, even on failure or
    Ctrl-C, plus two 'runtime start' processes against one (two_process_ratio).

    With --history N: grow a file to N finished runs (10 steps, one event, two
    deliveries each) and measure the growth figures on it and on a fresh file.

    With --http: the figures without the HTTP server, and with it serving the API and
    the dashboard polled at a dashboard's rate and at 20 requests/s, in alternating
    rounds (--runs of each), with each figure's ratio to the one without.

    With --api-runs N: seed a database (the SQLite --api-runs-db, or with --database a
    PostgreSQL schema, default runtime_bench_api_runs) to N runs of a realistic mix and
    time GET /api/runs through the served app for each filter shape (bar: p50 <= 50 ms).
    """
    _refuse_mixed(
        fast_path=fast_path,
        database=database,
        history=history,
        history_db=history_db,
        idle_seconds=idle_seconds,
        http=http,
        api_runs=api_runs,
        api_runs_db=api_runs_db,
    )
    if api_runs is not None:
        _api_runs(as_json, repeat, api_runs, api_runs_db, database)
        return
    if http:
        _http(as_json, repeat, fast_path, database)
        return
    if database is not None:
        if history is not None:
            fail("--database: not with --history (the growth figures are SQLite's)", EXIT_USAGE)
        if not fast_path:
            fail("--no-fast-path: only on SQLite, not with --database", EXIT_USAGE)
        _postgres(as_json, repeat, database)
        return
    if history is not None:
        _history(as_json, repeat, fast_path, history, history_db, idle_seconds or IDLE_SECONDS)
        return
    if history_db is not None:
        fail("--history-db: only with --history N", EXIT_USAGE)
    if idle_seconds is not None:
        fail("--idle-seconds: only with --history N", EXIT_USAGE)
    from runtime.bench.figures import measure

    samples = [anyio.run(lambda: measure(fast_path=fast_path)) for _ in range(repeat)]
    figures = {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}
    figures["peak_rss_mb"] = max(s["peak_rss_mb"] for s in samples)
    if as_json:
        echo_json(figures)
        return
    click.echo(f"runtime bench: medians of {repeat} run(s), fresh SQLite file in WAL mode")
    click.echo(table(("FIGURE", "VALUE"), list(figures.items())))


def _postgres(as_json: bool, repeat: int, database: str) -> None:
    import psycopg

    from runtime.bench.scaling import measure_postgres
    from runtime.bench.scratch import scratch

    try:
        parsed = parse_database_url(database)
        if parsed.scheme != "postgresql":
            fail(f"--database {redact(database)}: only a postgresql:// URL", EXIT_USAGE)
        samples = []
        for i in range(repeat):
            with scratch(database) as area:
                click.echo(
                    f"bench: measuring ({i + 1}/{repeat}) on {area.shown}, "
                    f"scratch schemas {area.prefix}_*",
                    err=True,
                )
                samples.append(measure_postgres(area))
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    except psycopg.Error as exc:
        fail(f"--database {redact(database)}: {type(exc).__name__}: {exc}".strip(), EXIT_FAILED)
    figures = {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}
    figures["peak_rss_mb"] = max(s["peak_rss_mb"] for s in samples)
    if as_json:
        echo_json(figures)
        return
    click.echo(
        f"runtime bench: medians of {repeat} run(s), PostgreSQL {redact(database)}, "
        "scratch schemas (dropped)"
    )
    click.echo(table(("FIGURE", "VALUE"), list(figures.items())))


def _history(
    as_json: bool,
    repeat: int,
    fast_path: bool,
    runs: int,
    history_db: Path | None,
    idle_seconds: float,
) -> None:
    from runtime.bench.history import history, render

    if not fast_path:
        fail(
            "--no-fast-path: not with --history (the growth figures use the fast path)", EXIT_USAGE
        )
    if history_db is not None:
        if not history_db.parent.is_dir():
            fail(
                f"--history-db {history_db}: the folder {history_db.parent} does not exist",
                EXIT_USAGE,
            )
        history_db = history_db.resolve()

    def progress(line: str) -> None:
        click.echo(f"bench: {line}", err=True)

    try:
        result = history(
            runs, history_db, repeats=repeat, idle_seconds=idle_seconds, progress=progress
        )
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    if as_json:
        echo_json(result)
        return
    growth = result["growth"]
    click.echo(
        f"runtime bench --history {runs}: {result['history_runs']:,} grown runs "
        f"({result['aged_file_mb']} MB; grown now: {growth['grown_runs']:,} in "
        f"{growth['seconds']} s), medians of {repeat} run(s), aged against fresh"
    )
    click.echo(table(("FIGURE", "AGED", "FRESH", "RATIO", "BAR", "VERDICT"), render(result)))


def _refuse_mixed(
    *,
    fast_path: bool,
    database: str | None,
    history: int | None,
    history_db: Path | None,
    idle_seconds: float | None,
    http: bool,
    api_runs: int | None,
    api_runs_db: Path | None,
) -> None:
    """Exit 2 on options that do not go together (each message names them)."""
    if api_runs_db is not None and api_runs is None:
        fail("--api-runs-db: only with --api-runs N", EXIT_USAGE)
    modes = [
        name
        for name, given in (("--history", history), ("--http", http), ("--api-runs", api_runs))
        if given
    ]
    if len(modes) > 1:
        fail(f"{' and '.join(modes)}: one at a time", EXIT_USAGE)
    if api_runs is not None:
        if not fast_path:
            fail("--no-fast-path: not with --api-runs (it times the API, not steps)", EXIT_USAGE)
        if idle_seconds is not None:
            fail("--idle-seconds: only with --history N", EXIT_USAGE)
        if api_runs_db is not None and database is not None:
            fail(
                "--api-runs-db: a SQLite file; with --database the runs are seeded in a "
                "PostgreSQL schema (the URL's schema=, default runtime_bench_api_runs)",
                EXIT_USAGE,
            )
        if api_runs_db is not None and not api_runs_db.parent.is_dir():
            fail(
                f"--api-runs-db {api_runs_db}: the folder {api_runs_db.parent} does not exist",
                EXIT_USAGE,
            )
    if http:
        if idle_seconds is not None or history_db is not None:
            fail("--idle-seconds, --history-db: only with --history N", EXIT_USAGE)
        if database is not None and not fast_path:
            fail("--no-fast-path: only on SQLite, not with --database", EXIT_USAGE)


def _progress(line: str) -> None:
    click.echo(f"bench: {line}", err=True)


def _api_runs(
    as_json: bool, repeat: int, runs: int, path: Path | None, database: str | None
) -> None:
    import psycopg

    from runtime.bench.api_runs import api_runs, render

    try:
        result = api_runs(
            runs,
            path.resolve() if path is not None else None,
            database,
            rounds=repeat,
            progress=_progress,
        )
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    except psycopg.Error as exc:
        shown = redact(database or "")
        fail(f"--database {shown}: {type(exc).__name__}: {exc}".strip(), EXIT_FAILED)
    if as_json:
        echo_json(result)
        return
    seeding = result["seeding"]
    click.echo(
        f"runtime bench --api-runs {runs}: GET /api/runs and the pages on {result['database']} "
        f"({result['runs']:,} runs; seeded now: {seeding['seeded_runs']:,} in "
        f"{seeding['seconds']} s), {result['rounds']} round(s) of "
        f"{result['shapes'][0]['samples'] // result['rounds']} requests per shape"
    )
    header = ("SHAPE", "ROWS", "P50_MS", "P95_MS", "MAX_MS", f"P50 <= {result['bar_ms']:g} MS")
    click.echo(table(header, render(result["shapes"])))


def _http(as_json: bool, repeat: int, fast_path: bool, database: str | None) -> None:
    import psycopg

    from runtime.bench.http_load import compare, header, render

    try:
        if database is not None and parse_database_url(database).scheme != "postgresql":
            fail(f"--database {redact(database)}: only a postgresql:// URL", EXIT_USAGE)
        result = compare(repeat, _progress, fast_path=fast_path, database=database)
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    except psycopg.Error as exc:
        fail(f"--database {redact(database or '')}: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if as_json:
        echo_json(result)
        return
    where = "fresh SQLite files" if database is None else f"PostgreSQL {redact(database)}"
    click.echo(
        f"runtime bench --http: medians of {repeat} round(s) on {where}, the HTTP server "
        "off and on (polled at each rate), alternating"
    )
    click.echo(table(header(), render(result)))
