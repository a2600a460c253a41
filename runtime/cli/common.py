"""What every command shares: the global options, exit codes, tables, JSON and errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click

from runtime.config import ProjectConfig, load_project_config
from runtime.discovery import Discovered, discover
from runtime.errors import ConfigError, DatabaseNotFoundError, RunNotFoundError, RuntimeBaseError
from runtime.store.base import Store

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
"""A run did not complete, or ``check`` found problems."""
EXIT_USAGE = 2
"""Bad usage, bad configuration, an unknown workflow, a bad value."""
EXIT_NOT_FOUND = 3
"""The run or the delivery asked for does not exist."""
EXIT_INTERRUPTED = 130
"""``run --here`` stopped by Ctrl-C (SIGINT) or SIGTERM: the run was handed back (128 + 2)."""


class Context:
    """Options shared by every subcommand: the project, the database and log overrides."""

    def __init__(
        self,
        project: Path,
        database: str | None,
        *,
        log_format: str | None = None,
        log_level: str | None = None,
    ) -> None:
        self.project = project
        self.database = database
        self.log_format = log_format
        self.log_level = log_level

    def config(self) -> ProjectConfig:
        """The project's settings (exit 2 when they are bad)."""
        try:
            return load_project_config(self.project)
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)

    def database_url(self, config: ProjectConfig | None = None) -> str:
        """``--database`` when given, else the project's."""
        return self.database or (config or self.config()).database

    def discover(self, *, strict: bool = True) -> tuple[ProjectConfig, Discovered]:
        """The project's settings and what its folders define (exit 2 on problems if strict)."""
        config = self.config()
        found = discover(config)
        if strict:
            try:
                found.raise_problems()
            except ConfigError as exc:
                fail(str(exc), EXIT_USAGE)
        return config, found

    async def open_store(self, *, create: bool = False) -> Store:
        """The project's store, opened; created when missing only if ``create``.

        Commands that only read (or manage what is stored) never create a database
        or a folder: a path with no database there is an error naming it.
        """
        from runtime.store import open_store

        return await open_store(self.database_url(), self.project.resolve(), create=create)


pass_context = click.make_pass_decorator(Context)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on an event loop, mapping runtime errors to exit codes."""
    try:
        return anyio.run(fn)
    except RunNotFoundError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except RuntimeBaseError as exc:
        fail(said(exc), EXIT_USAGE)
    except BaseExceptionGroup as group:
        # A task of the service failed (e.g. its database file was deleted): the
        # runtime's own errors are reported like any other, anything else is a bug.
        errors = _leaves(group)
        if not all(isinstance(e, RuntimeBaseError) for e in errors):
            raise
        fail("; ".join(dict.fromkeys(said(e) for e in errors)), EXIT_USAGE)


def said(error: BaseException) -> str:
    """What the CLI says of a runtime error: its message, with a hint where the CLI has one."""
    if isinstance(error, DatabaseNotFoundError):
        # The settings that chose the path are the CLI's; a library caller has none of them.
        return (
            f"{error}; check --database, RUNTIME_DATABASE or 'database' in runtime.toml "
            "(commands that only read never create one)"
        )
    return str(error)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def with_store(ctx: Context, read: Callable[[Store], Awaitable[T]]) -> T:
    """Open the existing store (never creating one), call ``read`` with it, close it."""
    store = await ctx.open_store()
    try:
        return await read(store)
    finally:
        await store.close()


def echo_json(value: Any) -> None:
    """One line of JSON on stdout."""
    click.echo(json.dumps(value, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table: left-aligned columns two spaces apart, ``None`` as blank.

    A value of several lines (a validation error's message) shows its first line
    and ``...``: a line break would break the rows apart.
    """
    cells = [[str(h) for h in headers]]
    cells += [[_one_line("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    if len(lines) <= 1:
        return text.strip() if lines else ""
    return f"{lines[0].rstrip()} ..."


def when(moment: datetime | None) -> str:
    """A UTC time for a table, to the millisecond; blank for ``None``."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def local(moment: datetime) -> str:
    """A time in its own timezone for a table, with the zone's abbreviation."""
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def short(value: Any, width: int = 60) -> str:
    """A JSON value on one line, cut to ``width`` characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
