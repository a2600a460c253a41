"""``runtime start`` (the long-lived service) and ``runtime bench`` (this machine's figures)."""

from __future__ import annotations

import statistics
from typing import Any

import anyio
import click

from runtime.cli.common import EXIT_USAGE, Context, echo_json, fail, pass_context, run_async, table
from runtime.errors import RuntimeBaseError
from runtime.log import configure


@click.command()
@pass_context
def start(ctx: Context) -> None:
    """Run the service: worker, event dispatcher, scheduler, recovery (until SIGTERM/SIGINT).

    A project whose modules have problems does not start (exit 2, every problem listed).
    """
    from runtime.service import Runtime

    config = ctx.config()
    try:
        configure(
            ctx.log_format or config.log_format,  # type: ignore[arg-type]
            (ctx.log_level or config.log_level).lower(),
        )
        options: dict[str, Any] = {}
        if ctx.database:
            options["database"] = ctx.database
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
@click.option("--fast-path/--no-fast-path", default=True, show_default=True,
              help="Measure with (or without) the store's fast path, for comparison.")  # fmt: skip
def bench(as_json: bool, repeat: int, fast_path: bool) -> None:
    """Measure step throughput, start-to-result latency and memory on a fresh SQLite file."""
    from runtime.bench import measure

    samples = [anyio.run(lambda: measure(fast_path=fast_path)) for _ in range(repeat)]
    figures = {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}
    figures["peak_rss_mb"] = max(s["peak_rss_mb"] for s in samples)
    if as_json:
        echo_json(figures)
        return
    click.echo(f"runtime bench: medians of {repeat} run(s), fresh SQLite file in WAL mode")
    click.echo(table(("FIGURE", "VALUE"), list(figures.items())))
