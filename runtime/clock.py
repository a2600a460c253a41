"""Time, injectable: the engine asks a ``Clock`` for now and for sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio


class Clock(Protocol):
    """Where the runtime reads time and waits."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cancellable)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))


class AlignedClock(SystemClock):
    """The wall clock moved by ``offset``: the database server's clock, as seen from here.

    The runtime's default clock. On a database with a clock of its own (PostgreSQL),
    the offset is measured when the runtime or client connects
    (:func:`runtime.store.align_clock`), so every process sharing the database writes
    and compares times (leases, due times, schedules) on the server's clock, not on
    hosts' clocks that may disagree. On SQLite it stays zero: one host, one clock.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def to_text(moment: datetime) -> str:
    """Store form of a time: ISO 8601 in UTC with microseconds (sorts as text)."""
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment!r}: runtime stores aware UTC times only")
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """Inverse of :func:`to_text`."""
    return datetime.fromisoformat(text)
