"""Time, injectable: the engine asks a ``Clock`` for now and for sleeps."""

from __future__ import annotations

from datetime import UTC, datetime
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
