"""Records: the statuses of runs and steps, and what the store hands back when read."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class RunStatus(StrEnum):
    """A run's status (DESIGN 2.1)."""

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    PAUSED = "paused"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATION_FAILED = "compensation_failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        """True for the statuses a run never leaves on its own."""
        return self in TERMINAL


TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.COMPENSATION_FAILED, RunStatus.CANCELED}
)


class RunKind(StrEnum):
    """Which authoring style a run's workflow is written in, hence which driver runs it."""

    COMPOSITION = "composition"
    """``create_workflow``: a recorded graph of steps."""
    DURABLE = "durable"
    """``@workflow``: a function replayed over its step records."""
    UNRESOLVED = "unresolved"
    """Started by name alone (a client): the first worker to drive it resolves the
    version, and with it the kind, and the run keeps them."""


class Control(StrEnum):
    """An operator's request to a run that a worker holds, obeyed between two steps."""

    PAUSE = "pause"
    CANCEL = "cancel"


class RunAction(StrEnum):
    """What an operator can do to a run (the state table of DESIGN 2.1)."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"


class Overlap(StrEnum):
    """What a schedule's firing does while the run of its previous firing is still active."""

    SKIP = "skip"
    """Start nothing; the firing is recorded ``skipped_overlap``."""
    ALLOW = "allow"
    """Start a run anyway."""


class StepStatus(StrEnum):
    """A step's status (DESIGN 2.1)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


class StepError(BaseModel):
    """An error as shown on a result or a run: which step, what type, what message."""

    model_config = ConfigDict(frozen=True)

    step: str | None
    type: str
    message: str
    traceback: str | None = None


CANCELED_BY_OPERATOR = StepError(step=None, type="Canceled", message="canceled by an operator")
"""The error an operator's cancel records on a run that has none (the engine, when it
obeys the cancel, and the state table, for a run no worker holds)."""


class StepRecord(BaseModel):
    """One step of a run as stored."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    seq: int
    name: str
    status: StepStatus
    attempts: int
    output: Any = None
    compensate_input: Any = None
    error: StepError | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    completed_order: int | None = None
    compensable: bool = False
    """The rollback owes this step a compensation: it completed and has one, or it failed
    for good and has its own. A rollback that cannot find it is an error on the run."""


class RunRecord(BaseModel):
    """One run as stored, with its steps when read through ``get_run``."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow: str
    version: str | None
    kind: RunKind = RunKind.COMPOSITION
    status: RunStatus
    idempotency_key: str | None
    input: Any = None
    output: Any = None
    error: StepError | None = None
    rollback_status: RunStatus | None = None
    control: Control | None = None
    wake_at: datetime | None = None
    owner_id: str | None = None
    parent_run_id: str | None = None
    available_at: datetime
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    steps: list[StepRecord] = []


class DeliveryStatus(StrEnum):
    """A delivery's status (DESIGN 2.1)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class FiringOutcome(StrEnum):
    """What became of one nominal fire time of a schedule."""

    STARTED = "started"
    SKIPPED_OVERLAP = "skipped_overlap"
    MISSED = "missed"


class EventRecord(BaseModel):
    """An event as stored."""

    model_config = ConfigDict(frozen=True)

    seq: int
    id: str
    name: str
    data: Any = None
    metadata: dict[str, Any] = {}
    idempotency_key: str | None = None
    source_run_id: str | None = None
    occurred_at: datetime
    available_at: datetime


class DeliveryRecord(BaseModel):
    """One (event, subscriber) delivery as stored."""

    model_config = ConfigDict(frozen=True)

    id: str
    event_id: str
    event_seq: int
    event_name: str
    subscriber_id: str
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    available_at: datetime
    error: StepError | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class ScheduleRecord(BaseModel):
    """A schedule as persisted: where it stands, how often it fired."""

    model_config = ConfigDict(frozen=True)

    name: str
    workflow: str
    expression: str
    timezone: str
    next_fire_at: datetime | None
    executions: int
    max_executions: int | None
    overlap: Overlap
    catchup_window: float
    active: bool
    last_run_id: str | None


class FiringRecord(BaseModel):
    """One nominal fire time of a schedule and its outcome."""

    model_config = ConfigDict(frozen=True)

    schedule: str
    nominal_at: datetime
    outcome: FiringOutcome
    run_id: str | None
    recorded_at: datetime
