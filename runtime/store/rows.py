"""Each table's columns, and the record (or rule's snapshot) built from a row by column name.

Shared by every backend: a backend selects these columns in its own SQL and hands
each row over as a mapping from column name to stored value (the SQLite store zips
its tuples with the names, see :mod:`runtime.store.sqlite_tables`); the record is
built here, once. Stored values are what the schema holds: times as uniform UTC text
(:func:`runtime.clock.to_text`) or, from PostgreSQL, aware datetimes; JSON documents as
text; flags as 0 or 1, or booleans.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from runtime.clock import from_text
from runtime.models import (
    Control,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    FiringOutcome,
    FiringRecord,
    Overlap,
    RunKind,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepError,
    StepRecord,
    StepStatus,
)
from runtime.store.records import DeliveryWork, SubscriberRow, WorkerRow
from runtime.store.rules.schedules import ScheduleSnapshot, StoredPlan
from runtime.store.rules.state_table import RunSnapshot

Row = Mapping[str, Any]
"""One row: its stored values by column name."""

RUN_COLUMNS = (
    "id",
    "workflow",
    "version",
    "status",
    "idempotency_key",
    "input",
    "output",
    "error",
    "owner_id",
    "parent_run_id",
    "available_at",
    "created_at",
    "updated_at",
    "ended_at",
    "rollback_status",
    "control",
    "wake_at",
    "kind",
)
"""The columns of ``runs`` a :class:`RunRecord` is built from."""

RUN_SNAPSHOT_COLUMNS = (
    "id",
    "status",
    "owner_id",
    "control",
    "wake_at",
    "has_completed_steps",
)
"""What the state table reads of a run (:class:`RunSnapshot`); ``has_completed_steps`` is
computed, true when a step of the run completed."""

STEP_COLUMNS = (
    "run_id",
    "seq",
    "name",
    "status",
    "attempts",
    "output",
    "compensate_input",
    "error",
    "started_at",
    "ended_at",
    "completed_order",
    "compensable",
)
"""The columns of ``steps`` a :class:`StepRecord` is built from."""

EVENT_COLUMNS = (
    "seq",
    "id",
    "name",
    "data",
    "metadata",
    "idempotency_key",
    "source_run_id",
    "occurred_at",
    "available_at",
)
"""The columns of ``events`` an :class:`EventRecord` is built from."""

DELIVERY_COLUMNS = (
    "id",
    "event_id",
    "event_seq",
    "event_name",
    "subscriber_id",
    "status",
    "attempts",
    "max_attempts",
    "available_at",
    "error",
    "created_at",
    "updated_at",
    "finished_at",
)
"""A ``deliveries`` row joined with its event's name (``event_name``): a :class:`DeliveryRecord`."""

DELIVERY_WORK_COLUMNS = (
    "delivery_id",
    "subscriber_id",
    "attempts",
    "max_attempts",
    *EVENT_COLUMNS,
)
"""A claimed delivery (its ``id`` as ``delivery_id``) joined with its whole event."""

SUBSCRIBER_COLUMNS = ("id", "patterns", "max_attempts", "active")
"""The columns of ``subscribers``; ``patterns`` is a JSON list."""

SCHEDULE_COLUMNS = (
    "name",
    "workflow",
    "expression",
    "timezone",
    "next_fire_at",
    "executions",
    "max_executions",
    "overlap",
    "catchup_window",
    "active",
    "last_run_id",
)
"""The columns of ``schedules`` a :class:`ScheduleRecord` is built from."""

SCHEDULE_PLAN_COLUMNS = ("name", "expression", "timezone", "active", "next_fire_at", "executions")
"""What a declaration is compared with (:class:`StoredPlan`) and compared-and-set on."""

SCHEDULE_SNAPSHOT_COLUMNS = (
    "active",
    "next_fire_at",
    "executions",
    "max_executions",
    "overlap",
    "last_run_status",
)
"""What the firing rule reads of a schedule (:class:`ScheduleSnapshot`), with the status
of its last run (``last_run_status``, joined from ``runs``)."""

FIRING_COLUMNS = ("schedule", "nominal_at", "outcome", "run_id", "recorded_at")
"""The columns of ``schedule_firings``."""

WORKER_COLUMNS = ("id", "host", "pid", "started_at", "heartbeat_at", "process_start")
"""The columns of ``workers``."""


def run_record(row: Row, steps: list[StepRecord] | None = None) -> RunRecord:
    """The run stored in ``row`` (:data:`RUN_COLUMNS`), with ``steps`` if given."""
    ended_at, rollback_status = row["ended_at"], row["rollback_status"]
    control, wake_at = row["control"], row["wake_at"]
    return RunRecord(
        id=row["id"],
        workflow=row["workflow"],
        version=row["version"],
        status=RunStatus(row["status"]),
        idempotency_key=row["idempotency_key"],
        input=_json(row["input"]),
        output=_json(row["output"]),
        error=_error(row["error"]),
        owner_id=row["owner_id"],
        parent_run_id=row["parent_run_id"],
        available_at=_at(row["available_at"]),
        created_at=_at(row["created_at"]),
        updated_at=_at(row["updated_at"]),
        ended_at=_time(ended_at),
        rollback_status=RunStatus(rollback_status) if rollback_status else None,
        control=None if control is None else Control(control),
        wake_at=_time(wake_at),
        kind=RunKind(row["kind"]),
        steps=steps or [],
    )


def run_snapshot(row: Row) -> RunSnapshot:
    """The run's snapshot in ``row`` (:data:`RUN_SNAPSHOT_COLUMNS`)."""
    control, wake_at = row["control"], row["wake_at"]
    return RunSnapshot(
        run_id=row["id"],
        status=RunStatus(row["status"]),
        owner_id=row["owner_id"],
        control=Control(control) if control is not None else None,
        wake_at=_time(wake_at),
        has_completed_steps=bool(row["has_completed_steps"]),
    )


def step_record(row: Row) -> StepRecord:
    """The step stored in ``row`` (:data:`STEP_COLUMNS`)."""
    started_at, ended_at = row["started_at"], row["ended_at"]
    return StepRecord(
        run_id=row["run_id"],
        seq=row["seq"],
        name=row["name"],
        status=StepStatus(row["status"]),
        attempts=row["attempts"],
        output=_json(row["output"]),
        compensate_input=_json(row["compensate_input"]),
        error=_error(row["error"]),
        started_at=_time(started_at),
        ended_at=_time(ended_at),
        completed_order=row["completed_order"],
        compensable=bool(row["compensable"]),
    )


def event_record(row: Row) -> EventRecord:
    """The event stored in ``row`` (:data:`EVENT_COLUMNS`)."""
    return EventRecord(
        seq=row["seq"],
        id=row["id"],
        name=row["name"],
        data=_json(row["data"]),
        metadata=_json(row["metadata"]) or {},
        idempotency_key=row["idempotency_key"],
        source_run_id=row["source_run_id"],
        occurred_at=_at(row["occurred_at"]),
        available_at=_at(row["available_at"]),
    )


def delivery_record(row: Row) -> DeliveryRecord:
    """The delivery stored in ``row`` (:data:`DELIVERY_COLUMNS`)."""
    finished_at = row["finished_at"]
    return DeliveryRecord(
        id=row["id"],
        event_id=row["event_id"],
        event_seq=row["event_seq"],
        event_name=row["event_name"],
        subscriber_id=row["subscriber_id"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        available_at=_at(row["available_at"]),
        error=_error(row["error"]),
        created_at=_at(row["created_at"]),
        updated_at=_at(row["updated_at"]),
        finished_at=_time(finished_at),
    )


def delivery_work(row: Row) -> DeliveryWork:
    """The claimed delivery in ``row`` (:data:`DELIVERY_WORK_COLUMNS`)."""
    return DeliveryWork(
        id=row["delivery_id"],
        subscriber_id=row["subscriber_id"],
        attempt=row["attempts"],
        max_attempts=row["max_attempts"],
        event=event_record(row),
    )


def subscriber_row(row: Row) -> SubscriberRow:
    """The subscriber stored in ``row`` (:data:`SUBSCRIBER_COLUMNS`)."""
    return SubscriberRow(
        row["id"], tuple(json.loads(row["patterns"])), row["max_attempts"], bool(row["active"])
    )


def schedule_record(row: Row) -> ScheduleRecord:
    """The schedule stored in ``row`` (:data:`SCHEDULE_COLUMNS`)."""
    next_fire_at = row["next_fire_at"]
    return ScheduleRecord(
        name=row["name"],
        workflow=row["workflow"],
        expression=row["expression"],
        timezone=row["timezone"],
        next_fire_at=_time(next_fire_at),
        executions=row["executions"],
        max_executions=row["max_executions"],
        overlap=Overlap(row["overlap"]),
        catchup_window=row["catchup_window"],
        active=bool(row["active"]),
        last_run_id=row["last_run_id"],
    )


def stored_plan(row: Row) -> StoredPlan:
    """The stored plan in ``row`` (:data:`SCHEDULE_PLAN_COLUMNS`)."""
    return StoredPlan(
        row["expression"],
        row["timezone"],
        bool(row["active"]),
        row["next_fire_at"] is not None,
        row["executions"],
    )


def schedule_snapshot(row: Row) -> ScheduleSnapshot:
    """The schedule's snapshot in ``row`` (:data:`SCHEDULE_SNAPSHOT_COLUMNS`)."""
    next_fire_at, last_status = row["next_fire_at"], row["last_run_status"]
    return ScheduleSnapshot(
        active=bool(row["active"]),
        next_fire_at=_time(next_fire_at),
        executions=row["executions"],
        max_executions=row["max_executions"],
        overlap=Overlap(row["overlap"]),
        last_run_status=RunStatus(last_status) if last_status else None,
    )


def firing_record(row: Row) -> FiringRecord:
    """The firing stored in ``row`` (:data:`FIRING_COLUMNS`)."""
    return FiringRecord(
        schedule=row["schedule"],
        nominal_at=_at(row["nominal_at"]),
        outcome=FiringOutcome(row["outcome"]),
        run_id=row["run_id"],
        recorded_at=_at(row["recorded_at"]),
    )


def worker_row(row: Row) -> WorkerRow:
    """The worker stored in ``row`` (:data:`WORKER_COLUMNS`)."""
    return WorkerRow(
        row["id"],
        row["host"],
        row["pid"],
        _at(row["started_at"]),
        _at(row["heartbeat_at"]),
        row["process_start"],
    )


def error_json(error: StepError) -> str:
    """``error`` as ``runs.error`` stores it, in the key order every writer of it uses."""
    fields = {"type": error.type, "message": error.message, "step": error.step}
    return json.dumps({**fields, "traceback": error.traceback})


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _error(text: str | None) -> StepError | None:
    return None if text is None else StepError.model_validate_json(text)


def _at(value: str | datetime) -> datetime:
    """A stored time: UTC text (SQLite) or an aware ``datetime`` (PostgreSQL's timestamptz)."""
    return value if isinstance(value, datetime) else from_text(value)


def _time(value: str | datetime | None) -> datetime | None:
    """A stored time that may be absent (``NULL``)."""
    return _at(value) if value else None
