"""What the CLI reads from its options: JSON payloads (inline, ``@file`` or ``-``) and seconds.

A payload option (``--data``, ``--input``, ``--metadata``) takes JSON text, or
``@path`` to read it from a file (relative to the working directory, as curl reads
it), or ``-`` to read it from standard input, for
payloads longer than the system's argument limit. JSON text never starts with
``@`` and is never just ``-``, so the forms cannot be confused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from runtime.cli.common import EXIT_USAGE, fail
from runtime.codec import parse, utf8
from runtime.errors import RuntimeBaseError
from runtime.limits import MAX_DURATION, duration, period

STDIN = "-"


def payloads(**options: str | None) -> dict[str, Any]:
    """Decode each payload option given (``None`` stays ``None``), or exit 2 naming it.

    Keys are option names without dashes (``data``, ``input``, ``metadata``).
    """
    from_stdin = [name for name, value in options.items() if value == STDIN]
    if len(from_stdin) > 1:
        named = " and ".join(f"--{name} -" for name in from_stdin)
        fail(f"{named}: standard input can be read for one option only", EXIT_USAGE)
    return {
        name: None if value is None else _payload(value, f"--{name}")
        for name, value in options.items()
    }


def _payload(value: str, option: str) -> Any:
    where = option
    if value == STDIN:
        where = f"{option} - (standard input)"
        text = _decode(sys.stdin.buffer.read(), where)
    elif value.startswith("@"):
        where = f"{option} {value}"
        text = _read(value[1:], where)
    else:
        text = value
    try:
        return parse(text, where)
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE)


def _read(name: str, where: str) -> str:
    if not name:
        fail(f"{where}: give a file after '@' (e.g. @payload.json)", EXIT_USAGE)
    path = Path(name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fail(f"{where}: no such file {str(path)!r}", EXIT_USAGE)
    except IsADirectoryError:
        fail(f"{where}: {str(path)!r} is a directory, not a file", EXIT_USAGE)
    except OSError as exc:
        fail(f"{where}: cannot read {str(path)!r}: {exc.strerror or exc}", EXIT_USAGE)
    except ValueError as exc:  # a name the file system cannot take (a NUL, a lone surrogate)
        fail(f"{where}: {str(path)!r} is not a usable file name: {exc}", EXIT_USAGE)
    return _decode(data, where)


def _decode(data: bytes, where: str) -> str:
    try:
        return utf8(data, where)
    except RuntimeBaseError as exc:
        fail(str(exc), EXIT_USAGE)


class Seconds(click.ParamType[float]):
    """A number of seconds: finite, not negative (or positive), at most 366 days."""

    name = "seconds"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        try:
            return duration(number, "the value", positive=self.positive, maximum=MAX_DURATION)
        except RuntimeBaseError as exc:
            self.fail(f"{value!r}: {str(exc).removeprefix('the value ')}", param, ctx)


class Period(click.ParamType[float]):
    """A period as ``runtime.toml``'s ``retention`` takes it: ``30d``, ``12h``, seconds; 0 never."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return period(value, "the value")
        except RuntimeBaseError as exc:
            self.fail(f"{value!r}: {str(exc).removeprefix('the value ')}", param, ctx)


class Text(click.ParamType[str]):
    """A string argument: valid UTF-8 (not bytes the shell could not decode), non-empty if asked.

    An argument holding bytes that are not UTF-8 reaches Python as lone surrogates, which
    no database can store or match: refused here, naming the argument.
    """

    name = "text"

    def __init__(self, *, non_empty: bool = False) -> None:
        self.non_empty = non_empty

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            self.fail(f"{text!r} is not valid UTF-8 text (character {exc.start + 1})", param, ctx)
        if self.non_empty and not text.strip():
            self.fail("must be a non-empty string", param, ctx)
        return text
