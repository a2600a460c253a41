"""A run in flight: what the executor and the rollback share about it."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import structlog

from runtime.errors import StoredError
from runtime.models import StepError, StepRecord
from runtime.sdk.workflows import WorkflowDefinition
from runtime.store.base import StepWrite

if TYPE_CHECKING:
    from runtime.container import Container

logger = structlog.get_logger("runtime.engine")


@dataclasses.dataclass(slots=True)
class RunState:
    """A run being driven by this worker: its graph, values and step records."""

    run_id: str
    workflow: WorkflowDefinition
    container: Container
    values: dict[str, Any]
    records: dict[int, StepRecord]
    next_order: int
    error: StoredError | None = None

    def record(self, write: StepWrite, output: Any = None, compensate_input: Any = None,
               error: StoredError | None = None) -> None:  # fmt: skip
        """Keep in memory what a checkpoint just wrote."""
        self.records[write.seq] = StepRecord(
            run_id=self.run_id,
            seq=write.seq,
            name=write.name,
            status=write.status,
            attempts=write.attempts,
            output=output,
            compensate_input=compensate_input,
            error=step_error(error),
            started_at=write.started_at,
            ended_at=write.ended_at,
            completed_order=write.completed_order,
        )


def step_error(error: StoredError | None) -> StepError | None:
    """A stored error in the form results and records show."""
    if error is None:
        return None
    return StepError(step=error.step, type=error.type, message=error.message,
                     traceback=error.traceback)  # fmt: skip


def stored_error(error: StepError | None) -> StoredError | None:
    """Inverse of :func:`step_error`."""
    if error is None:
        return None
    return StoredError(error.type, error.message, error.traceback, error.step)
