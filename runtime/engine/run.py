"""A run in flight: what the drivers, the step runner and the rollback share about it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from runtime.errors import StoredError
from runtime.models import RunStatus, StepError, StepRecord, StepStatus
from runtime.sdk.steps import StepFn, StepOptions
from runtime.store.base import StepWrite

if TYPE_CHECKING:
    from runtime.container import Container

logger = structlog.get_logger("runtime.engine")


@dataclasses.dataclass(frozen=True, slots=True)
class Compensator:
    """How to undo one step: its compensation function and the options to retry it with.

    ``own`` says whether the step's own compensation runs when the step itself failed
    (not for failures let through by ``continue``/``skip_on_permanent_failure``).
    """

    fn: StepFn
    options: StepOptions
    own: bool = True


@dataclasses.dataclass(slots=True)
class RunState:
    """A run being driven by this worker: its step records and what it learned so far."""

    run_id: str
    workflow: Any
    container: Container
    records: dict[int, StepRecord]
    next_order: int
    version: str | None = None
    error: StoredError | None = None
    control: str | None = None
    """An operator's request seen at the last checkpoint: ``pause`` or ``cancel``."""
    interruptible: bool = False
    """Driven by the worker: stop before the next step when the engine drains, and park
    long retry waits (a run driven by ``run()`` in a caller's task waits in memory)."""
    finished: bool = False
    """The run was completed in the same transaction as its last step's checkpoint."""
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    compensators: dict[int, Compensator] = dataclasses.field(default_factory=dict)
    replay_stopped: tuple[int, str] | None = None
    """Where and why a durable run's read-only replay (learning its compensations) ended,
    when it ended early: the last step it reached, and the reason the rollback gives for
    the compensation of a later step, which the replay could not learn."""

    def record(
        self,
        write: StepWrite,
        output: Any = None,
        compensate_input: Any = None,
        error: StoredError | None = None,
    ) -> None:
        """Keep in memory what a checkpoint just wrote (already valid: not validated again)."""
        self.records[write.seq] = StepRecord.model_construct(
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
            compensable=write.compensable,
        )


class Suspended(BaseException):
    """Unwinds a driver (and a durable workflow's own code) when the run stops here.

    A BaseException so that ``except Exception`` in user code cannot swallow it.
    ``status`` is what the run is left in: sleeping (a durable sleep or a parked
    retry), paused, pending (shutdown), or compensating (a cancel).
    """

    def __init__(self, status: RunStatus) -> None:
        super().__init__(status.value)
        self.status = status


def step_error(error: StoredError | None) -> StepError | None:
    """A stored error in the form results and records show."""
    if error is None:
        return None
    return StepError(
        step=error.step, type=error.type, message=error.message, traceback=error.traceback
    )


def stored_error(error: StepError | None) -> StoredError | None:
    """Inverse of :func:`step_error`."""
    if error is None:
        return None
    return StoredError(error.type, error.message, error.traceback, error.step)


def log_run_end(
    run_id: str,
    workflow: str,
    status: RunStatus,
    error: StepError | None,
    steps: Iterable[StepRecord] = (),
) -> None:
    """Write the one line that says a run ended badly (``run_failed``, ``run_canceled``,
    ``run_compensation_failed``), with the step that failed and its error.

    Nothing is written for a run that completed or has not ended. For
    ``compensation_failed`` the compensation that failed and its error come too.
    """
    if not status.terminal or status is RunStatus.COMPLETED:
        return
    fields: dict[str, Any] = {
        "run_id": run_id,
        "workflow": workflow,
        "step": error.step if error is not None else None,
        "error": f"{error.type}: {error.message}" if error is not None else None,
    }
    if status is RunStatus.FAILED:
        logger.warning("run_failed", **fields)
        return
    if status is RunStatus.CANCELED:
        logger.warning("run_canceled", **fields)
        return
    for record in steps:
        if record.status is StepStatus.COMPENSATION_FAILED and record.error is not None:
            fields["compensation_step"] = record.name
            fields["compensation_error"] = f"{record.error.type}: {record.error.message}"
    logger.error("run_compensation_failed", **fields)
