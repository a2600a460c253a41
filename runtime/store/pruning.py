"""A prune (retention): the store's ``prune`` and its records (cutoffs, cursor, counts).

The rules themselves are in ``docs/retention.md``; each backend applies them in its
``prune``, part of :class:`runtime.store.base.Store` through :class:`PruneStore`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol

PRUNE_BATCH = 50
"""Runs, events and firings one prune batch removes, at most (of each kind)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PruneCutoffs:
    """What retention removes: records that ended before these times (``None``: never).

    ``completed``: completed runs, events whose deliveries are all done (or that have
    none), schedule firings. ``failed``: failed, compensation_failed and canceled runs,
    and events kept by a dead delivery (see ``docs/retention.md``).
    """

    completed: datetime | None
    failed: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PruneCounts:
    """How many records of each kind a prune removed (or, dry, would remove)."""

    runs: int = 0
    steps: int = 0
    staged_events: int = 0
    events: int = 0
    deliveries: int = 0
    firings: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        """The counts, in field order."""
        return dataclasses.astuple(self)

    def as_dict(self) -> dict[str, int]:
        """The counts by kind (``runs``, ``steps``, ...), for logs and JSON."""
        return dataclasses.asdict(self)

    @property
    def total(self) -> int:
        """Every record counted, of every kind."""
        return sum(self.as_tuple())


Position = tuple[str, int | str]
"""Where a walk stopped: the last row it read, as (its time in ISO text, its key).

The key orders the rows of one time, in the backend's own index order: SQLite's
rowid; an event's ``seq``; on PostgreSQL, which has no stable row address, a run's
``id`` and a firing's ``schedule``. Only the backend that made a position reads it.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class PruneCursor:
    """Where each of a prune's walks goes on from: the last row it read (opaque).

    A round walks each kind of history once, batch after batch, so the rows a rule
    keeps (a dead delivery's event, a child whose parent lives on) are read once per
    round, not once per batch; and a dry run, which removes nothing, moves on too.
    A cursor belongs to the store that returned it (see :data:`Position`).
    """

    runs: tuple[tuple[str, str, int | str], ...] = ()
    """Per status walked: (status, ended_at, key) of the last run read."""
    events: Position | None = None
    """(occurred_at, key) of the last event read."""
    firings: Position | None = None
    """(nominal_at, key) of the last firing read."""


@dataclasses.dataclass(frozen=True, slots=True)
class PruneBatch:
    """One batch of a prune: what it removed (or, dry, would remove); whether to go on.

    Call again with ``cursor`` as ``after`` while ``more`` is true.
    """

    counts: PruneCounts
    more: bool
    cursor: PruneCursor = PruneCursor()
    held_s: float = 0.0
    """How long the batch's statements held the write transaction, in seconds."""


class PruneStore(Protocol):
    """Retention's part of the :class:`~runtime.store.base.Store` protocol."""

    async def prune(
        self,
        cutoffs: PruneCutoffs,
        *,
        limit: int = PRUNE_BATCH,
        after: PruneCursor | None = None,
        dry_run: bool = False,
    ) -> PruneBatch:
        """Remove one batch of what retention allows, in one short write transaction.

        At most ``limit`` runs (each with its steps and staged events), ``limit`` events
        (each with its deliveries) and ``limit`` schedule firings are read and, where
        the rules allow, removed. Call again with the returned cursor while ``more`` is
        true. With ``dry_run`` the batch is counted and nothing is removed (a read).
        The rules are in ``docs/retention.md``.
        """
        raise NotImplementedError  # protocol
