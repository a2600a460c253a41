"""The ``Store`` protocol: every byte of state goes through it.

Engines depend on this protocol only. JSON values cross it as text on the way
in (the engine serializes, so a bad value fails its step rather than the
store) and as decoded Python on the way out. Times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from runtime.models import (
    Control,
    DeliveryRecord,
    DeliveryStatus,
    FiringRecord,
    RunAction,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepRecord,
)
from runtime.store.changes import RunChange
from runtime.store.pruning import PruneStore
from runtime.store.records import (
    DeliveryWork,
    NewEvent,
    NewRun,
    Page,
    RunPage,
    ScheduleSpec,
    StepWrite,
    SubscriberRow,
    WorkerRow,
)


class Store(PruneStore, Protocol):
    """Durable state of runs, steps and workers: ``store.sqlite`` and ``store.postgres``.

    Retention's part, ``prune``, is declared with its records in ``store/pruning.py``.
    """

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        """Insert ``run``; with an idempotency key already used, return that run instead.

        Returns the run and whether it was created now.
        """
        raise NotImplementedError  # protocol

    async def claim_run(
        self,
        run_id: str,
        owner_id: str,
        expected_owner: str | None,
        now: datetime,
        *,
        pin: tuple[str | None, str] | None = None,
    ) -> RunRecord | None:
        """Take a run if its owner is still ``expected_owner``; ``None`` if someone was faster.

        A claimed ``pending`` or ``sleeping`` run becomes ``running``. ``pin`` (version,
        kind) fixes the version of a run started by name alone (kind ``unresolved``).
        """
        raise NotImplementedError  # protocol

    async def transition(
        self,
        run_id: str,
        expected: Sequence[RunStatus],
        status: RunStatus,
        now: datetime,
        *,
        owner_id: str | None = None,
        error: str | None = None,
        rollback_status: RunStatus | None = None,
    ) -> RunRecord | None:
        """Move a run to ``status`` (and owner ``owner_id``) if its status is in ``expected``.

        ``error`` and ``rollback_status`` (what the run ends as after a rollback) are
        set when given, kept otherwise.

        Returns the updated run, or ``None`` when the run was not in ``expected``.
        """
        raise NotImplementedError  # protocol

    async def checkpoint(
        self,
        run_id: str,
        owner_id: str,
        steps: Sequence[StepWrite],
        change: RunChange,
        now: datetime,
    ) -> Control | None:
        """Write step outcomes and what happens to the run (``change``) in one transaction.

        Returns an operator's pending request for the run (pause, cancel), which the
        driver obeys before its next step, or ``None``. A change that releases the run
        answers the request: it is cleared and ``None`` returned. ``Complete`` with a
        request pending is the exception: only the steps are written, and the request
        is returned (see :class:`~runtime.store.changes.Complete`).

        Raises:
            LeaseLostError: the run is no longer held by ``owner_id``.
        """
        raise NotImplementedError  # protocol

    async def control_run(self, run_id: str, action: RunAction, now: datetime) -> RunRecord:
        """Apply an operator's ``pause``, ``resume``, ``cancel`` or ``retry`` atomically.

        The state table of DESIGN 2.1: see :mod:`runtime.store.rules.state_table`.

        Raises:
            RunNotFoundError: no such run.
            InvalidTransitionError: the action does not apply to the run's status.
            StoreOperationError: the run kept changing while the rule was applied (a
                backend whose transactions interleave); nothing was written.
        """
        raise NotImplementedError  # protocol

    async def defer_run(
        self, run_id: str, expected_owner: str | None, error: str | None, available_at: datetime
    ) -> bool:
        """Hand a run back, unowned: its code is missing, or its driving was cut off.

        A ``running`` or ``sleeping`` run becomes ``pending`` (a ``compensating`` one
        stays so), due again at ``available_at``, with ``error`` when one is given.
        False when the run's owner is no longer ``expected_owner``.
        """
        raise NotImplementedError  # protocol

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        """One run, with its steps ordered by sequence.

        Raises:
            RunNotFoundError: no such run.
        """
        raise NotImplementedError  # protocol

    async def find_run(self, workflow: str, idempotency_key: str) -> RunRecord | None:
        """The run of ``workflow`` started with ``idempotency_key``, if any."""
        raise NotImplementedError  # protocol

    async def list_runs(
        self,
        *,
        status: Sequence[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first, filtered; pass ``next_cursor`` back for the next page."""
        raise NotImplementedError  # protocol

    async def count_runs(self) -> dict[tuple[str, RunStatus], int]:
        """How many runs each workflow has in each status, for ``GET /metrics``.

        Every status of every workflow that has a run is given, zeros included. Each
        count seeks its (workflow, status) in an index and reads that index's entries
        only, never a table row: its cost follows the runs kept (retention bounds it),
        about 75 ms a million runs on SQLite (``docs/metrics.md``).
        """
        raise NotImplementedError  # protocol

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        """The steps of a run, ordered by sequence."""
        raise NotImplementedError  # protocol

    async def recoverable_runs(
        self, workflows: Sequence[str], now: datetime, stale_before: datetime, limit: int
    ) -> list[RunRecord]:
        """Active runs of ``workflows`` that nobody live holds and that are due.

        A run is unheld when its owner is ``NULL``, gone from ``workers``, or has
        not sent a heartbeat since ``stale_before``.
        """
        raise NotImplementedError  # protocol

    async def unclaimed_unknown(
        self, workflows: Sequence[str], now: datetime, limit: int
    ) -> list[RunRecord]:
        """Due ``pending`` runs of workflows not in ``workflows`` that carry no error yet."""
        raise NotImplementedError  # protocol

    async def upsert_worker(self, worker: WorkerRow) -> None:
        """Register a worker or refresh its heartbeat."""
        raise NotImplementedError  # protocol

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Refresh a worker's heartbeat (it renews every lease the worker holds).

        False when the worker is not registered (it was taken for dead).
        """
        raise NotImplementedError  # protocol

    async def list_workers(self) -> list[WorkerRow]:
        """Every registered worker."""
        raise NotImplementedError  # protocol

    async def remove_workers(self, worker_ids: Sequence[str], now: datetime) -> int:
        """Forget workers and release their runs (``running`` ones go back to ``pending``).

        Returns how many runs were released.
        """
        raise NotImplementedError  # protocol

    # -- events -----------------------------------------------------------

    async def emit(self, event: NewEvent) -> tuple[str, bool]:
        """Store an event (the outbox); with a used idempotency key, return that event's id.

        Returns the id and whether it was stored now.
        """
        raise NotImplementedError  # protocol

    async def sync_subscribers(
        self,
        subscribers: Sequence[SubscriberRow],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> None:
        """Declare this service's subscribers: upsert them active, deactivate the others
        that no other live worker declares.

        ``subscribers`` are stored as ``worker_id``'s declarations (replacing its earlier
        ones); a subscriber is deactivated when it is not in ``subscribers`` and no other
        worker with a heartbeat at or after ``live_since`` (``now`` if not given)
        declares it, so during a rolling deploy an old process keeps its subscribers.
        Declarations of workers no longer registered are dropped.
        """
        raise NotImplementedError  # protocol

    async def list_subscribers(self) -> list[SubscriberRow]:
        """Every subscriber ever declared, with whether it is active."""
        raise NotImplementedError  # protocol

    async def fan_out(self, now: datetime, limit: int) -> int:
        """Create the deliveries of events not fanned out yet; how many events were.

        Each event gets one delivery per active subscriber whose patterns match it.
        Idempotent across processes: one delivery per (event, subscriber).
        """
        raise NotImplementedError  # protocol

    async def next_run_due(self, workflows: Sequence[str]) -> datetime | None:
        """When the next ``pending`` or ``sleeping`` run of these workflows is due, if any."""
        raise NotImplementedError  # protocol

    async def claim_deliveries(
        self,
        owner_id: str,
        subscriber_ids: Sequence[str],
        now: datetime,
        stale_before: datetime,
        limit: int,
    ) -> list[DeliveryWork]:
        """Take due deliveries (and ones whose holder is dead), counting the attempt."""
        raise NotImplementedError  # protocol

    async def finish_delivery(
        self,
        delivery_id: str,
        owner_id: str,
        status: DeliveryStatus,
        now: datetime,
        *,
        error: str | None = None,
        available_at: datetime | None = None,
    ) -> bool:
        """Record a delivery's outcome; False when it is no longer held by ``owner_id``."""
        raise NotImplementedError  # protocol

    async def next_delivery_at(self, subscriber_ids: Sequence[str]) -> datetime | None:
        """When the next pending delivery for these subscribers is due, if any."""
        raise NotImplementedError  # protocol

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Events, newest first (``Page.items`` are :class:`EventRecord`)."""
        raise NotImplementedError  # protocol

    async def list_deliveries(
        self,
        *,
        status: Sequence[DeliveryStatus] | None = None,
        subscriber_id: str | None = None,
        event_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Deliveries, newest event first (``Page.items`` are :class:`DeliveryRecord`)."""
        raise NotImplementedError  # protocol

    async def deliveries_of_events(self, event_seqs: Sequence[int]) -> list[DeliveryRecord]:
        """Every delivery of the events of these ``seq`` s (a page of events), newest event
        first, then newest delivery: one query where :meth:`list_deliveries` by
        ``event_id`` would be one per event."""
        raise NotImplementedError  # protocol

    async def count_deliveries(self) -> dict[DeliveryStatus, int]:
        """How many deliveries are in each status (every status, zeros included), each
        counted in the index by status, as :meth:`count_runs` counts runs."""
        raise NotImplementedError  # protocol

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord:
        """One delivery.

        Raises:
            DeliveryNotFoundError: no delivery with that id.
        """
        raise NotImplementedError  # protocol

    async def redrive(self, delivery_ids: Sequence[str] | None, now: datetime) -> int:
        """Dead deliveries (these, or all) back to pending with fresh attempts; how many."""
        raise NotImplementedError  # protocol

    async def change_token(self) -> int:
        """A number that changes when another process commits (cheap to poll)."""
        raise NotImplementedError  # protocol

    async def wait_change(self, token: int, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for :meth:`change_token` to move from ``token``.

        Returns the token then (``token`` itself when nothing changed in time). SQLite
        polls its file's version; PostgreSQL wakes on ``LISTEN/NOTIFY`` at once. Either
        way a change is a hint that makes loops look, never the record.
        """
        raise NotImplementedError  # protocol

    async def database_time(self) -> datetime | None:
        """The database server's clock now, or ``None`` when the database has no clock
        of its own (SQLite: the host's clock is the only one).

        Processes on several machines share a PostgreSQL database: each aligns its
        clock with the server's (see :func:`runtime.store.database_clock`), so leases,
        due times and schedules are judged on one clock, never a host's.
        """
        raise NotImplementedError  # protocol

    # -- schedules --------------------------------------------------------

    async def sync_schedules(
        self,
        specs: Sequence[ScheduleSpec],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> list[ScheduleRecord]:
        """Reconcile stored schedules with the code's; return the active ones.

        New schedules are planned from ``spec.next_fire_at``; one whose expression or
        timezone changed is re-planned from it; counts survive. ``specs`` are stored
        as ``worker_id``'s declarations (replacing its earlier ones); a schedule is
        deactivated when it is not in ``specs`` and no other worker with a heartbeat
        at or after ``live_since`` declares it. Declarations of workers no longer
        registered are dropped.
        """
        raise NotImplementedError  # protocol

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every stored schedule, active or not."""
        raise NotImplementedError  # protocol

    async def fire(
        self,
        schedule: str,
        nominal_at: datetime,
        run: NewRun | None,
        next_fire_at: datetime | None,
        missed: Sequence[datetime],
        now: datetime,
    ) -> FiringRecord | None:
        """Fire ``schedule`` for ``nominal_at`` once, in one transaction.

        With ``run=None`` (every due firing is older than the catch-up window)
        ``nominal_at`` is recorded ``missed`` like the others and the schedule moves to
        ``next_fire_at``.

        Records ``missed`` firings, then either starts ``run`` (pending), or skips it
        because the previous run is still active (overlap ``skip``), and moves the
        schedule to ``next_fire_at``. Returns ``None`` when another process already
        fired this nominal time or the schedule ran out of executions.

        Raises:
            StoreOperationError: the schedule changed between the rule's read and this
                firing's write (a backend whose transactions interleave); nothing was
                written, and the scheduler's next tick acts on what is stored then.
        """
        raise NotImplementedError  # protocol

    async def list_firings(self, schedule: str, limit: int = 50) -> list[FiringRecord]:
        """The latest firings of a schedule, newest first."""
        raise NotImplementedError  # protocol

    async def check_file(self) -> None:
        """Raise :class:`~runtime.errors.DatabaseReplacedError` if the database this store
        writes to is no longer the one its URL names (its file deleted or replaced)."""
        raise NotImplementedError  # protocol

    async def close(self) -> None:
        """Flush and close."""
        raise NotImplementedError  # protocol
