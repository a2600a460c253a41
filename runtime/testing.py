"""Test helpers: ``ManualClock`` (virtual time) and ``wait_for_status`` (a run reaching a point)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.lowlevel

from runtime.errors import DefinitionError
from runtime.models import RunRecord, RunStatus

__all__ = ["ManualClock", "RunReader", "wait_for_status"]

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


class RunReader(Protocol):
    """What :func:`wait_for_status` reads runs through: ``rt.workflows`` or a ``Client``."""

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        """The run with its steps (see ``rt.workflows.get_run``)."""
        ...


POLL_INTERVAL = 0.005
"""Seconds between two reads of the run in :func:`wait_for_status`."""


async def wait_for_status(runs: RunReader, run_id: str, *statuses: RunStatus) -> RunRecord:
    """Wait until the run is in one of ``statuses``; return its record, with its steps.

    For a test that acts at a point of a run's life: a run parked ``sleeping`` on a
    durable sleep before it advances a :class:`ManualClock`, a run ``running`` before it
    pauses or cancels it. (To wait for a run to end, ``rt.workflows.wait`` is enough.)
    It polls the store on real time, not on the runtime's clock, and for as long as it
    takes: bound it with ``anyio.fail_after``::

        handle = await rt.workflows.run(flow)
        with anyio.fail_after(5):
            await wait_for_status(rt.workflows, handle.run_id, RunStatus.SLEEPING)
        clock.advance(3600)

    Args:
        runs: ``rt.workflows``, a ``Client``, or anything with their ``get_run``.
        run_id: the run to watch.
        statuses: the statuses to wait for (at least one).

    Raises:
        DefinitionError: no status was given.
        RunNotFoundError: no such run.
    """
    if not statuses:
        raise DefinitionError("wait_for_status needs at least one status to wait for")
    while True:
        record = await runs.get_run(run_id)
        if record.status in statuses:
            return record
        await anyio.sleep(POLL_INTERVAL)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give an aware time (e.g. tzinfo=UTC)")
    return moment.astimezone(UTC)
