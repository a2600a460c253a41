"""structlog set-up: console lines on a terminal, JSON lines otherwise.

The runtime never configures structlog by itself: configuration is global, and an
application that embeds a ``Runtime`` owns it. The CLI calls :func:`configure_logging`
at its entry point; an application calls it once at start-up, or configures
structlog its own way (the runtime's lines then follow the application's set-up).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "console", "json"]


def configure_logging(format: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog once, at the entry point (the CLI, or an embedding application).

    Args:
        format: ``console`` for people, ``json`` for log shippers, ``auto`` picks
            console when stderr is a terminal.
        level: the lowest level written (``debug``, ``info``, ``warning``, ``error``).
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        from runtime.errors import ConfigError

        raise ConfigError(f"log level {level!r} is not one of debug, info, warning, error")
    use_console = format == "console" or (format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Not cached: no log call is on a per-step path, and a cached module-level logger
        # would ignore a later configuration (an application's, or a test's capture_logs).
        cache_logger_on_first_use=False,
    )
