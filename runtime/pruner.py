"""Retention: how long history is kept, and the service's loop that prunes the rest.

Every few minutes (:data:`PRUNE_INTERVAL`, on the injected clock) the service
removes what the rules of ``docs/retention.md`` allow, batch after batch (each one
short write transaction of the store's), giving the event loop and the other
writers a turn between batches, until nothing is left. ``runtime prune`` runs the
same rounds once.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import structlog

from runtime.clock import Clock
from runtime.errors import ConfigError, StoreError
from runtime.limits import period
from runtime.store.base import Store
from runtime.store.pruning import PRUNE_BATCH, PruneCounts, PruneCursor, PruneCutoffs

logger = structlog.get_logger("runtime.pruner")

PRUNE_INTERVAL = 300.0
"""Seconds between two rounds of the service's pruner."""

FIRST_ROUND_AFTER = 30.0
"""Seconds after start-up before the first round (start-up itself is left alone)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How long ended history is kept, in seconds; 0 keeps it forever.

    Attributes:
        completed: completed runs, events whose deliveries all ended done (or that
            had no subscriber), schedule firings (``retention``).
        failed: failed, compensation_failed and canceled runs, events with a dead
            delivery: what an operator can still retry or redrive (``failed_retention``).
    """

    completed: float
    failed: float = 0.0

    @classmethod
    def of(
        cls, completed: Any, failed: Any = 0.0, *, error: type[Exception] = ConfigError
    ) -> Retention:
        """A retention from periods (seconds, ``timedelta`` or ``"30d"``), or ``error``."""
        return cls(
            period(completed, "retention", error=error),
            period(failed, "failed_retention", error=error),
        )

    @property
    def enabled(self) -> bool:
        """Whether anything is ever removed."""
        return self.completed > 0 or self.failed > 0

    def cutoffs(self, now: datetime) -> PruneCutoffs:
        """What ended before which time may go, as of ``now``."""
        return PruneCutoffs(
            completed=now - timedelta(seconds=self.completed) if self.completed else None,
            failed=now - timedelta(seconds=self.failed) if self.failed else None,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PruneRound:
    """What one round removed (or, dry, would remove), in how many batches.

    ``longest_batch_s``: the longest time one batch held the write transaction.
    """

    counts: PruneCounts
    batches: int
    longest_batch_s: float


async def prune(
    store: Store, cutoffs: PruneCutoffs, *, limit: int = PRUNE_BATCH, dry_run: bool = False
) -> PruneRound:
    """Remove (or, dry, count) everything ``cutoffs`` allow, batch after batch.

    Between two batches the event loop gets a turn, and whatever queued behind the
    batch's transaction (a checkpoint, a claim) commits before the next one.
    """
    counts, batches, longest = PruneCounts(), 0, 0.0
    cursor = PruneCursor()
    while True:
        batch = await store.prune(cutoffs, limit=limit, after=cursor, dry_run=dry_run)
        counts += batch.counts
        batches += 1
        longest = max(longest, batch.held_s)
        cursor = batch.cursor
        if not batch.more:
            return PruneRound(counts, batches, longest)
        await anyio.lowlevel.checkpoint()


class Pruner:
    """The service's pruning loop; ``Runtime`` starts it when retention is on.

    Args:
        store: the store to prune.
        clock: time source: the rounds' cutoffs and the waits between rounds.
        retention: how long to keep what.
        interval: seconds between rounds (:data:`PRUNE_INTERVAL` when ``None``, read
            when the loop starts, as :data:`FIRST_ROUND_AFTER` is, so a script can
            shorten both).
    """

    def __init__(
        self, store: Store, clock: Clock, retention: Retention, interval: float | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self.retention = retention
        self._interval = interval
        self._draining = False
        self.rounds = 0
        """Rounds finished (failed ones included)."""
        self.failures = 0
        """Rounds a store error cut short (retried at the next round)."""
        self.removed = PruneCounts()
        """Everything removed since start."""
        self._round_ended = anyio.Event()
        self._exited = anyio.Event()

    def drain(self) -> None:
        """Start no new round (a graceful shutdown); a batch in flight still commits.

        Non-blocking: :meth:`wait_stopped` waits for the loop to return.
        """
        self._draining = True

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Prune every ``interval`` until drained or cancelled.

        A store error is logged and the round is tried again at the next interval.
        """
        task_status.started()
        wait = FIRST_ROUND_AFTER
        interval = PRUNE_INTERVAL if self._interval is None else self._interval
        while not self._draining:
            await self._clock.sleep(wait)
            wait = interval
            if self._draining:
                break
            try:
                await self.prune_once()
            except StoreError as exc:
                self.failures += 1
                logger.error("prune_failed", error=str(exc), retry_in_s=interval)
            self.rounds += 1
            self._round_ended.set()
            self._round_ended = anyio.Event()
        self._exited.set()

    async def prune_once(self) -> PruneRound:
        """One round now: everything the retention allows, batch after batch."""
        done = await prune(self._store, self.retention.cutoffs(self._clock.now()))
        self.removed += done.counts
        if done.counts.total:
            logger.info(
                "pruned",
                **done.counts.as_dict(),
                batches=done.batches,
                longest_batch_ms=round(done.longest_batch_s * 1000, 2),
            )
        return done

    async def wait_rounds(self, count: int) -> None:
        """Wait until ``count`` rounds have finished (bound it with ``anyio.fail_after``)."""
        while self.rounds < count:
            ended = self._round_ended
            await ended.wait()

    async def wait_stopped(self) -> None:
        """Wait until the loop has seen :meth:`drain` and returned."""
        await self._exited.wait()
