"""``runtime dashboard``: the HTTP API and dashboard without a worker."""

from __future__ import annotations

import signal

import anyio
import click
import structlog

from runtime.cli.common import EXIT_USAGE, Context, fail, pass_context, run_async
from runtime.cli.payloads import Text
from runtime.clock import AlignedClock
from runtime.config import check_exposure, parse_http_address, redact
from runtime.errors import RuntimeBaseError
from runtime.log import configure_logging
from runtime.store import align_clock
from runtime.web.app import build_app, store_source
from runtime.web.console import Console
from runtime.web.project import Project
from runtime.web.server import HttpServer

logger = structlog.get_logger("runtime")

DEFAULT_HTTP = "127.0.0.1:8000"
"""Where ``runtime dashboard`` listens when neither ``--http`` nor ``http`` says."""


@click.command()
@click.option(
    "--http",
    "http",
    type=Text(non_empty=True),
    help=f"Serve on HOST:PORT [default: 'http' in runtime.toml, else {DEFAULT_HTTP}]; "
    "beyond loopback only with http_token set.",
)
@pass_context
def dashboard(ctx: Context, http: str | None) -> None:
    """Serve the HTTP API and the dashboard, without a worker (until SIGTERM/SIGINT).

    For an operator's box: it reads and manages the runs of the project's database
    (the project is loaded as 'runtime start' loads it, to know its workflows), and
    never executes a step. The database must exist: a service creates it.
    """
    config = ctx.config()
    try:
        configure_logging(
            ctx.log_format or config.log_format,  # type: ignore[arg-type]
            (ctx.log_level or config.log_level).lower(),
        )
        where = "--http" if http is not None else f"{config.source}: 'http'"
        address = parse_http_address(http or config.http or DEFAULT_HTTP, where)
        check_exposure(address, config.http_token, where)
        project = Project.load(ctx.project)
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE)
    database = ctx.database_url(config)

    async def serve() -> None:
        clock = AlignedClock()
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            store = await ctx.open_store()
            try:
                await align_clock(clock, store)
                console = Console(store_source(store), project, clock)
                server = HttpServer(build_app(console, token=config.http_token), address)
                async with anyio.create_task_group() as tg:
                    await tg.start(server.run)
                    logger.info("dashboard_started", database=redact(database))
                    async for received in signals:
                        logger.info("shutdown_requested", signal=signal.Signals(received).name)
                        break
                    server.drain()
            finally:
                with anyio.CancelScope(shield=True):
                    await store.close()
        logger.info("dashboard_stopped")

    run_async(serve)
