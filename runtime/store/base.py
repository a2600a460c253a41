"""The ``Store`` protocol: every byte of state goes through it.

Engines depend on this protocol only. JSON values cross it as text on the way
in (the engine serializes, so a bad value fails its step rather than the
store) and as decoded Python on the way out. Times are aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from runtime.models import (
    Control,
    DeliveryStatus,
    EventRecord,
    FiringRecord,
    Overlap,
    RunAction,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepRecord,
    StepStatus,
)
from runtime.store.pruning import PruneStore


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store (``data``/``metadata`` already JSON text)."""

    id: str
    name: str
    data: str
    metadata: str
    occurred_at: datetime
    available_at: datetime
    idempotency_key: str | None = None
    source_run_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StagedEvent:
    """An event a step staged; published only if its run completes."""

    name: str
    data: str
    metadata: str


@dataclasses.dataclass(frozen=True, slots=True)
class NewRun:
    """A run to insert."""

    id: str
    workflow: str
    version: str | None
    kind: str
    idempotency_key: str | None
    status: RunStatus
    input: str
    owner_id: str | None
    parent_run_id: str | None
    available_at: datetime
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class StepWrite:
    """One step's outcome, written as a checkpoint."""

    seq: int
    name: str
    status: StepStatus
    attempts: int
    output: str | None = None
    compensate_input: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    completed_order: int | None = None
    compensable: bool = False
    """The rollback owes this step a compensation (see :class:`~runtime.models.StepRecord`)."""
    events: tuple[StagedEvent, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RunUpdate:
    """A change to a run written with (or without) a step checkpoint; ``None``: unchanged."""

    status: RunStatus | None = None
    output: str | None = None
    error: str | None = None
    available_at: datetime | None = None
    ended_at: datetime | None = None
    release: bool = False
    """Give the run up: the owner and an operator's pending request are cleared."""
    only_if_unrequested: bool = False
    """Apply this update only when no operator request is pending; with one pending, the
    steps are still written, the run is left as it was, and the request is returned."""
    rollback_wins: bool = False
    """Write ``status`` unless the run's ``rollback_status`` (a cancel) says otherwise."""
    rollback_status: RunStatus | None = None
    wake_at: datetime | None = None
    clear_wake: bool = False
    publish_staged: bool = False
    drop_staged: bool = False
    events: tuple[NewEvent, ...] = ()

    @property
    def is_progress_only(self) -> bool:
        """Nothing of the run changes: a store reads the run row without rewriting it."""
        return self in _PROGRESS_ONLY


_PROGRESS_ONLY = (RunUpdate(), RunUpdate(only_if_unrequested=True))  # read at every step


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerRow:
    """A live (or once live) worker process."""

    id: str
    host: str
    """The host and its pid namespace: pids compare only within one."""
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    process_start: str | None = None
    """When the process started (kernel clock ticks): tells a reused pid apart."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryWork:
    """A claimed delivery: the event, and who it is for, on which attempt."""

    id: str
    subscriber_id: str
    attempt: int
    max_attempts: int
    event: EventRecord


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriberRow:
    """A subscriber as the store routes events to it."""

    id: str
    patterns: tuple[str, ...]
    max_attempts: int
    active: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule as the code declares it, for reconciliation at start-up.

    ``next_fire_at`` is the plan from now, used when the schedule is new or its
    expression or timezone changed.
    """

    name: str
    workflow: str
    expression: str
    timezone: str
    max_executions: int | None
    overlap: Overlap
    catchup_window: float
    next_fire_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """A page of records and the cursor of the next page (``None`` at the end)."""

    items: list[Any]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class RunPage:
    """A page of runs and the cursor of the next page (``None`` at the end)."""

    runs: list[RunRecord]
    next_cursor: str | None


class Store(PruneStore, Protocol):
    """Durable state of runs, steps and workers. Implemented by ``store.sqlite``.

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
        update: RunUpdate,
        now: datetime,
    ) -> Control | None:
        """Write step outcomes and the run's progress in one transaction.

        Returns an operator's pending request for the run (pause, cancel),
        which the driver obeys before its next step, or ``None``.

        Raises:
            LeaseLostError: the run is no longer held by ``owner_id``.
        """
        raise NotImplementedError  # protocol

    async def control_run(self, run_id: str, action: RunAction, now: datetime) -> RunRecord:
        """Apply an operator's ``pause``, ``resume``, ``cancel`` or ``retry`` atomically.

        The state table of DESIGN 2.1: see :mod:`runtime.store.sqlite_control`.

        Raises:
            RunNotFoundError: no such run.
            InvalidTransitionError: the action does not apply to the run's status.
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

    async def sync_subscribers(self, subscribers: Sequence[SubscriberRow], now: datetime) -> None:
        """Declare this service's subscribers: upsert them active, deactivate the others."""
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

    async def redrive(self, delivery_ids: Sequence[str] | None, now: datetime) -> int:
        """Dead deliveries (these, or all) back to pending with fresh attempts; how many."""
        raise NotImplementedError  # protocol

    async def change_token(self) -> int:
        """A number that changes when another process commits (cheap to poll)."""
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
