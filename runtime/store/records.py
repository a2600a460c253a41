"""What crosses the ``Store`` protocol on the way in, and the pages it hands back.

JSON values are text here (the engine serializes, so a bad value fails its step rather
than the store); times are aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from runtime.models import (
    EventRecord,
    Overlap,
    RunKind,
    RunRecord,
    RunStatus,
    StepStatus,
)


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
    kind: RunKind
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
