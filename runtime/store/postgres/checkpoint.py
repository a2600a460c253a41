"""The PostgreSQL store's checkpoint: group commit of the checkpoints ready together.

A checkpoint joins a queue and waits for its outcome. One leader (a future started
by the first checkpoint that finds none) writes batches while checkpoints are
queued: each batch is every checkpoint queued while the last one was written, so
throughput grows with concurrency instead of being one commit per step (200 runs
stepping together: a batch of about 170 checkpoints per commit here).

A batch is written one of two ways:

- Progress checkpoints and plain completions, nearly all of them, in one autocommit
  statement (:mod:`runtime.store.postgres.fast_checkpoint`): one round trip.
- Any other change (a rollback, a sleep, a release, a completion whose steps staged
  events) in a transaction (:func:`_write`): ``SELECT ... FOR UPDATE`` of the runs,
  then, in one pipeline, the step rows, each run's change, the events it publishes
  and a ``NOTIFY``; then the commit.

Either way the batch's runs are locked in id order (two batches never wait on each
other in a circle), and each checkpoint is decided as the SQLite store does: a run no
longer held by its writer gets ``LeaseLostError`` with nothing written; a pending
operator's request is answered or returned. When a batch fails (a statement error
in one checkpoint), each of its checkpoints is written again alone, so one bad write
cannot fail the others.

A checkpoint called is written whatever cancellation arrives (anyio's, which the
shield stops, and asyncio's own ``task.cancel()``, which goes through shields and is
caught): its caller raises the cancellation once its batch ended, as the SQLite
store's writes do. No caller's cancellation reaches the leader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from runtime.errors import CommitUncertainError, LeaseLostError
from runtime.models import Control
from runtime.store.changes import Progress, RunChange
from runtime.store.postgres import fast_checkpoint
from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.postgres.outbox import insert_event, publish_staged
from runtime.store.records import StepWrite
from runtime.store.row_changes import POSTGRES, RowChange, row_change

UPSERT_STEP = (
    "INSERT INTO steps (run_id, seq, name, status, attempts, output, compensate_input, error, "
    "started_at, ended_at, completed_order, compensable) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (run_id, seq) DO UPDATE SET name = excluded.name, status = excluded.status, "
    "attempts = excluded.attempts, output = excluded.output, "
    "compensate_input = excluded.compensate_input, error = excluded.error, "
    "started_at = excluded.started_at, ended_at = excluded.ended_at, "
    "completed_order = excluded.completed_order, compensable = excluded.compensable"
)

UPSERT_STAGED = (
    "INSERT INTO run_events (run_id, step_seq, idx, name, data, metadata) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, step_seq, idx) DO UPDATE "
    "SET name = excluded.name, data = excluded.data, metadata = excluded.metadata"
)


@dataclass(slots=True)
class _Checkpoint:
    """One checkpoint waiting in the queue, and its outcome once its batch committed."""

    run_id: str
    owner_id: str
    steps: Sequence[StepWrite]
    change: RunChange
    now: datetime
    settled: asyncio.Future[None]
    done: bool = False
    result: Control | None = None
    error: BaseException | None = None


class CheckpointMixin(PgCore):
    """``checkpoint`` (see :class:`runtime.store.base.Store`), group-committed."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._queue: list[_Checkpoint] = []
        self._commit_lock = anyio.Lock()
        """Held while a batch is written (a test holds it to gather one batch)."""
        self._leader: asyncio.Future[None] | None = None
        """Writes batches while checkpoints are queued; one at a time."""
        self.batches = 0
        """Transactions that wrote checkpoints (a batch written again alone counts once)."""
        self.checkpoints = 0
        """Checkpoints those transactions carried."""

    async def checkpoint(
        self,
        run_id: str,
        owner_id: str,
        steps: Sequence[StepWrite],
        change: RunChange,
        now: datetime,
    ) -> Control | None:
        settled = asyncio.get_running_loop().create_future()
        item = _Checkpoint(run_id, owner_id, steps, change, now, settled)
        self._queue.append(item)
        if self._leader is None:
            # A bare future, not a task group's task, on purpose: it serves every
            # caller's checkpoint, and none's cancellation may cut a batch short.
            self._leader = asyncio.ensure_future(self._lead())  # noqa: TID251
        # As every store write: a checkpoint called is written, and a cancellation that
        # arrives meanwhile (anyio's or asyncio's own) is raised once it was.
        caught: BaseException | None = None
        with anyio.CancelScope(shield=True):
            while not settled.done():
                try:
                    await asyncio.shield(settled)
                except asyncio.CancelledError as exc:
                    caught = caught or exc
        if caught is not None:
            raise caught
        if item.error is not None:
            raise item.error
        return item.result

    async def _lead(self) -> None:
        """Write batches until none is queued: each batch is every checkpoint queued
        while the last one was written."""
        try:
            while self._queue:
                async with self._commit_lock:
                    batch, self._queue = self._queue, []
                    await self._commit(batch)
        finally:
            self._leader = None

    async def _commit(self, batch: list[_Checkpoint]) -> None:
        self.batches += 1
        self.checkpoints += len(batch)
        try:
            fast: list[_Checkpoint] = []
            slow: list[_Checkpoint] = []
            for item in batch:
                (fast if fast_checkpoint.fits(item.change, item.steps) else slow).append(item)
            if fast:
                slow += await self._group(fast, fast=True)
            if slow:
                await self._group(slow, fast=False)
        except BaseException as exc:  # a bug, or the loop closing: no caller is left waiting
            for item in batch:
                if item.error is None:
                    item.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for item in batch:
                item.done = True
                if not item.settled.done():
                    item.settled.set_result(None)

    async def _group(self, items: list[_Checkpoint], *, fast: bool) -> list[_Checkpoint]:
        """Write ``items`` together (one statement if ``fast``, else one transaction);
        return the completions the statement left for the long way.

        A failure of the whole group writes each again alone, the long way, so one
        checkpoint's bad statement cannot fail the others; a commit whose outcome is
        unknown (its connection lost) is reported to each as it is, never written again.
        """
        progress_only = all(isinstance(item.change, Progress) for item in items)
        try:
            if fast:
                return await self._run(
                    lambda cur: fast_checkpoint.write(cur, items, self.channel, self.wake("ended")),
                    "checkpoint",
                    single=True,
                    idempotent=progress_only,  # upserts of the same records
                )
            await self._run(lambda cur: _write(cur, self, items), "checkpoint")
        except CommitUncertainError as exc:
            for item in items:
                item.error = exc
        except Exception as exc:
            if len(items) == 1 and not fast:
                items[0].error = exc
            else:
                for item in items:
                    try:
                        await self._run(_alone(self, item), "checkpoint")
                    except Exception as alone:
                        item.error = alone
        return []


async def _write(cur: Cursor, core: PgCore, batch: list[_Checkpoint]) -> None:
    """Write ``batch`` in the cursor's transaction; each checkpoint gets its outcome."""
    ids = sorted({item.run_id for item in batch})
    await cur.execute(
        "SELECT id, owner_id, control FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (ids,),
    )
    leases = {row["id"]: row for row in await cur.fetchall()}
    steps: list[tuple[Any, ...]] = []
    staged: list[tuple[Any, ...]] = []
    after: list[tuple[_Checkpoint, RowChange]] = []
    ended = queued = False
    async with cur.connection.pipeline():
        for item in batch:
            item.result, item.error = None, None
            lease = leases.get(item.run_id)
            if lease is None or lease["owner_id"] != item.owner_id:
                item.error = LeaseLostError(item.run_id, item.owner_id)
                continue
            requested = lease["control"]
            control = None if requested is None else Control(requested)
            # The run's row is locked: later checkpoints of the same run in this batch
            # (there are none today: a run writes one checkpoint at a time) would see it.
            steps += _step_rows(item)
            staged += _staged_rows(item)
            if isinstance(item.change, Progress):
                item.result = control
                continue
            parts = row_change(item.change, POSTGRES)
            if control is not None and parts.unless_requested:
                # Only the steps: the completion waits for the driver to obey the request.
                await cur.execute(
                    "UPDATE runs SET updated_at = %s WHERE id = %s", (item.now, item.run_id)
                )
                item.result = control
                continue
            sets = ", ".join(("updated_at = %s", *parts.sets))
            await cur.execute(
                f"UPDATE runs SET {sets} WHERE id = %s", (item.now, *parts.params, item.run_id)
            )
            item.result = None if parts.releases else control
            ended = ended or parts.ends
            # A run handed back to the queue (a shutdown, a long retry wait): another
            # process's worker may take it, or plan its wake-up.
            queued = queued or parts.queues
            after.append((item, parts))
        if steps:
            await cur.executemany(UPSERT_STEP, steps)
        if staged:
            await cur.executemany(UPSERT_STAGED, staged)
    for item, parts in after:
        if parts.staged == "publish":
            if await publish_staged(cur, item.run_id, item.now):
                ended = True
        elif parts.staged == "drop":
            await cur.execute("DELETE FROM run_events WHERE run_id = %s", (item.run_id,))
        for event in parts.events:
            await insert_event(cur, event)
    if ended:
        await core._notify(cur, "ended")
    if queued:
        await core._notify(cur, "run")


def _alone(core: PgCore, item: _Checkpoint) -> Callable[[Cursor], Awaitable[None]]:
    """Write one checkpoint of a batch that failed, in a transaction of its own."""

    async def write(cur: Cursor) -> None:
        await _write(cur, core, [item])

    return write


def _step_rows(item: _Checkpoint) -> list[tuple[Any, ...]]:
    return [
        (
            item.run_id,
            s.seq,
            s.name,
            s.status.value,
            s.attempts,
            s.output,
            s.compensate_input,
            s.error,
            s.started_at,
            s.ended_at,
            s.completed_order,
            s.compensable,
        )
        for s in item.steps
    ]


def _staged_rows(item: _Checkpoint) -> list[tuple[Any, ...]]:
    return [
        (item.run_id, s.seq, idx, e.name, e.data, e.metadata)
        for s in item.steps
        for idx, e in enumerate(s.events)
    ]
