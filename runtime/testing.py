"""Test helpers: ``ManualClock``, a clock whose time moves only when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

__all__ = ["ManualClock"]

_START = datetime(2026, 1, 1, tzinfo=UTC)


class _Sleeper:
    __slots__ = ("deadline", "woken")

    def __init__(self, deadline: datetime) -> None:
        self.deadline = deadline
        self.woken = anyio.Event()


class ManualClock:
    """A :class:`~runtime.clock.Clock` on virtual time, in the spirit of Trio's ``MockClock``.

    ``now()`` returns the virtual time; ``sleep(seconds)`` parks the caller
    until :meth:`advance` or :meth:`set` moves the time to (or past) its
    deadline. :meth:`wait_sleepers` lets a test wait until the code under test
    is parked again, that is, has finished reacting to a move::

        clock = ManualClock(datetime(2026, 3, 8, tzinfo=UTC))
        clock.advance(60)                 # wakes every sleeper due by then
        await clock.wait_sleepers(1)      # ... and waits until it sleeps again

    Args:
        start: the initial time (aware; converted to UTC). Default 2026-01-01 UTC.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _aware(start or _START)
        self._sleepers: list[_Sleeper] = []
        self._changed = anyio.Event()

    def now(self) -> datetime:
        """The virtual time, aware UTC."""
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are parked in :meth:`sleep`."""
        return len(self._sleepers)

    @property
    def next_deadline(self) -> datetime | None:
        """When the earliest sleeper is due, if any sleeps."""
        return min((s.deadline for s in self._sleepers), default=None)

    async def sleep(self, seconds: float) -> None:
        """Wait until virtual time reaches now + ``seconds`` (cancellable)."""
        deadline = self._now + timedelta(seconds=max(seconds, 0.0))
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(deadline)
        self._sleepers.append(sleeper)
        self._notify()
        try:
            await sleeper.woken.wait()
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)
                self._notify()

    def advance(self, seconds: float | timedelta) -> None:
        """Move virtual time forward by ``seconds`` and wake the sleepers now due."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if delta < timedelta(0):
            raise ValueError(f"advance({seconds!r}): time only moves forward")
        self.set(self._now + delta)

    def set(self, moment: datetime) -> None:
        """Set virtual time to ``moment`` (aware) and wake the sleepers now due."""
        self._now = _aware(moment)
        due = [s for s in self._sleepers if s.deadline <= self._now]
        if not due:
            return
        self._sleepers = [s for s in self._sleepers if s.deadline > self._now]
        for sleeper in due:
            sleeper.woken.set()
        self._notify()

    async def wait_sleepers(self, count: int = 1) -> None:
        """Wait until at least ``count`` tasks are parked in :meth:`sleep`.

        Bound it with ``anyio.fail_after``: it waits for as long as it takes.
        """
        while len(self._sleepers) < count:
            changed = self._changed
            await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give an aware time (e.g. tzinfo=UTC)")
    return moment.astimezone(UTC)
