"""Bounds on the numbers users pass in: durations, counts and page sizes, checked in one place.

Every duration in the API (``delay``, ``timeout``, ``retry_interval``,
``catchup_window``, ``ctx.sleep``, ``shutdown_grace``, the CLI's ``--delay`` and
``--timeout``) is seconds (a finite ``int``/``float``) or a ``timedelta``. NaN,
infinities, negatives, booleans and values past the bounds below are refused with
an error naming the argument, before anything is stored. The bounds are far past
any sensible value and well inside what ``datetime`` arithmetic and SQLite take.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from runtime.errors import DefinitionError

MAX_DURATION = 366 * 24 * 3600.0
"""366 days: the longest delay, sleep, timeout, retry interval or catch-up window."""

MAX_SHUTDOWN_GRACE = 3600.0
"""One hour: the longest a stop waits for running steps (``shutdown_grace``)."""

MAX_RETRIES = 1000
"""The most retries a step (``max_retries``) or a job may ask for."""

MAX_ATTEMPTS = 1000
"""The most attempts a subscriber's delivery (``max_attempts``) may ask for."""

MAX_EXECUTIONS = 1_000_000_000
"""The largest ``number_of_executions`` of a job or schedule."""

MAX_CONCURRENCY = 10_000
"""The most runs a worker drives at once (``concurrency``)."""

MAX_PAGE = 10_000
"""The largest page a listing returns (``limit``, ``--limit``)."""

MAX_TEXT = 500
"""The longest name the HTTP API takes (a workflow, an event, an idempotency key, an id,
a filter), in characters: far past real names, and well inside what an index holds
(PostgreSQL refuses btree entries past about 2,700 bytes)."""

MAX_RETENTION = 3650 * 24 * 3600.0
"""Ten years: the longest ``retention`` or ``failed_retention`` (0 means never)."""

PERIOD_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
"""The units a period written as text takes: ``45s``, ``90m``, ``12h``, ``30d``, ``2w``."""


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` for an error message: cut to ``width``, and safe for huge ints."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit conversion limit
        return f"an int of {value.bit_length()} bits" if isinstance(value, int) else "?"
    return text if len(text) <= width else text[: width - 3] + "..."


def duration(
    value: Any,
    what: str,
    *,
    positive: bool = False,
    maximum: float = MAX_DURATION,
    error: type[Exception] = DefinitionError,
) -> float:
    """``value`` (seconds or a ``timedelta``) as seconds, or ``error`` naming ``what``.

    ``positive`` refuses 0 too (timeouts). Booleans, NaN, infinities, negatives and
    anything past ``maximum`` are refused.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{what} must be seconds (a number) or a timedelta, got {shown(value)}")
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    if math.isnan(seconds) or math.isinf(seconds):
        raise error(f"{what} must be a finite number of seconds, got {shown(value)}")
    if seconds < 0 or (positive and seconds == 0):
        relation = "> 0" if positive else ">= 0"
        raise error(f"{what} must be {relation} seconds, got {shown(value)}")
    if seconds > maximum:
        raise error(f"{what} must be at most {maximum:g} seconds, got {shown(value)}")
    return seconds


def period(
    value: Any,
    what: str,
    *,
    maximum: float = MAX_RETENTION,
    error: type[Exception] = DefinitionError,
) -> float:
    """A period (``retention``, ``--older-than``) as seconds, or ``error`` naming ``what``.

    Seconds (a number, or a number as text) or a ``timedelta``, or text with a unit:
    ``45s``, ``90m``, ``12h``, ``30d``, ``2w`` (``1.5d`` too). ``0`` is valid: every
    caller reads it as "never".
    """
    seconds: Any = value
    if isinstance(value, str):
        spelled = value.strip().lower()
        factor = PERIOD_UNITS.get(spelled[-1:]) if spelled else None
        try:
            seconds = float(spelled[:-1] if factor is not None else spelled) * (factor or 1.0)
        except ValueError:
            seconds = None
    try:
        return duration(seconds, what, maximum=maximum, error=error)
    except error:
        raise error(
            f"{what} must be a period from 0 (never) to {maximum / 86400:g}d, such as 30d, "
            f"12h, 90m, 45s or 2w, or a number of seconds; got {shown(value)}"
        ) from None


def count(
    value: Any,
    what: str,
    *,
    minimum: int,
    maximum: int,
    error: type[Exception] = DefinitionError,
) -> int:
    """``value`` as an int in ``[minimum, maximum]``, or ``error`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an int, got {shown(value)}")
    if not minimum <= value <= maximum:
        raise error(f"{what} must be between {minimum} and {maximum}, got {shown(value)}")
    return value


def text(
    value: Any,
    what: str,
    *,
    maximum: int | None = None,
    error: type[Exception] = DefinitionError,
) -> str:
    """``value`` as a non-empty string (of at most ``maximum`` characters), or ``error``
    naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{what} must be a non-empty string, got {shown(value)}")
    if maximum is not None and len(value) > maximum:
        raise error(
            f"{what} must be at most {maximum} characters, got {len(value)}: {shown(value)}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"{what} is not valid UTF-8 text (character {exc.start + 1})") from None
    return value


def folder_arg(value: Any, what: str, *, error: type[Exception] = DefinitionError) -> Path | None:
    """``value`` (a ``str`` or path, or ``None``) as a ``Path``, or ``error`` naming ``what``."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise error(f"{what} must be a folder path, got {shown(value)}")
    return Path(value)


def listed(
    values: Any,
    what: str,
    kinds: tuple[type, ...],
    hint: str,
    *,
    error: type[Exception] = DefinitionError,
) -> list[Any]:
    """``values`` as a list whose items are all ``kinds``, or ``error`` naming ``what``."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise error(f"{what} must be a list of them, got {shown(values)}")
    items = list(values)
    for item in items:
        if not isinstance(item, kinds):
            raise error(f"{what}: {shown(item)} is not {hint}")
    return items
