"""Rolling a run back: compensations in reverse order, each checkpointed.

Order (DESIGN 2.3): first the own compensation of each step that failed for
good (with the ``compensate_input`` it gave through ``permanent_failure``,
else ``None``), then every completed step's compensation in reverse order of
completion. Skipped steps, steps that never started, and failures let through
by ``continue_on_permanent_failure`` are not compensated. A compensation is
retried like its step; when it still fails the run ends
``compensation_failed`` and the rollback stops there, for a person to look at.

The plan is computed from the step records alone, so a rollback resumed after
any number of crashes continues in the same order: whether a step failed
itself or completed is told by its completion order (set once, when the step
completed, and kept through every later status), never by its current status,
which a cut-off compensation leaves ``compensating``. A compensation is marked
``compensating`` before it runs and ``compensated`` once it returned: one cut
off in between runs again; one recorded ``compensated`` never does.

A step records whether the rollback owes it a compensation (``compensable``).
When the rollback cannot find that compensation (the workflow's code lost it, a
durable workflow's replay did not reach the step), the step is marked
``compensation_failed`` with an error naming the step and the run, and the run
ends ``compensation_failed``: never a step silently left undone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from runtime.codec import dumps
from runtime.engine.attempts import attempt
from runtime.engine.run import Compensator, Run, logger
from runtime.ids import new_id
from runtime.models import Control, RunStatus, StepError, StepRecord, StepStatus
from runtime.sdk.steps import call_step_fn
from runtime.store.changes import EndRollback
from runtime.store.records import NewEvent, StepWrite

Planned = tuple[Compensator | None, StepRecord]
"""A compensation to run for a step; ``None``: the step is owed one that cannot be found."""


def plan(run: Run) -> list[Planned]:
    """The compensations still to run, in the order they must run.

    A step failed itself when it has no completion order: its own compensation runs
    first (steps in order), then those of the completed steps, the last completed
    first. Steps already ``compensated`` are done.
    """
    own: list[Planned] = []
    done: list[Planned] = []
    for record in run.records.values():
        failed_itself = record.completed_order is None
        if record.status not in (_FAILED if failed_itself else _COMPLETED):
            continue  # compensated already, skipped, running, or a durable sleep
        compensator = run.compensators.get(record.seq)
        if compensator is None:
            # A step marked compensating (or failed compensating) had a compensation.
            if not (record.compensable or record.status in _UNDER_WAY):
                continue  # nothing to undo
        elif failed_itself and not compensator.own:
            continue  # a failure let through by continue/skip_on_permanent_failure
        (own if failed_itself else done).append((compensator, record))
    own.sort(key=lambda pair: pair[1].seq)
    done.sort(key=lambda pair: pair[1].completed_order or 0, reverse=True)
    return own + done


_UNDER_WAY = (StepStatus.COMPENSATING, StepStatus.COMPENSATION_FAILED)
"""A compensation that began and did not complete: cut off by a crash, or failed (and
retried by an operator)."""

_FAILED = (StepStatus.FAILED, *_UNDER_WAY)
"""The statuses of a step that failed itself and still needs its own compensation."""

_COMPLETED = (StepStatus.COMPLETED, *_UNDER_WAY)
"""The statuses of a completed step that still needs its compensation."""


async def roll_back(run: Run, final: RunStatus = RunStatus.FAILED) -> RunStatus:
    """Run the pending compensations of a ``compensating`` run and end it.

    ``final`` is the status the run ends in when every compensation ran: ``failed``,
    or ``canceled`` for an operator's cancel (also when one is seen now).
    """
    if run.control is Control.CANCEL:
        final = RunStatus.CANCELED
    for compensator, record in plan(run):
        if compensator is None:
            error: StepError | None = await _not_found(run, record)
        else:
            error = await _compensate(run, compensator, record)
        if error is not None:
            final = RunStatus.COMPENSATION_FAILED
            break
    else:
        # An operator may have canceled the run while it was rolling back: it ends
        # canceled. (The store applies the same rule in the final write, for a cancel
        # that lands between this read and that write.)
        final = await run.requested_rollback_status() or final
    now = run.now()
    await run.checkpoint(change=EndRollback(final, now, _failure_events(run, final, now)))
    return final


def _failure_events(run: Run, final: RunStatus, now: datetime) -> tuple[NewEvent, ...]:
    """The workflow's failure event (``job.failed`` for jobs), when the run did not succeed."""
    declared = run.workflow.failure_event
    if declared is None or final is RunStatus.CANCELED:
        return ()
    name, extra = declared
    error = None if run.error is None else run.error.model_dump(exclude={"traceback"})
    data = {
        **extra,
        "run_id": run.id,
        "workflow": run.workflow.name,
        "status": final.value,
        "error": error,
    }
    return (
        NewEvent(
            id=new_id("evt"),
            name=name,
            data=dumps(data, f"the data of {name!r}"),
            metadata="{}",
            occurred_at=now,
            available_at=now,
            source_run_id=run.id,
        ),
    )


def _marking(record: StepRecord, status: StepStatus) -> StepWrite:
    """The step's record with a new status; everything else (its completion order) kept."""
    return StepWrite(
        seq=record.seq,
        name=record.name,
        status=status,
        attempts=record.attempts,
        output=_text(record.output),
        compensate_input=_text(record.compensate_input),
        error=None if record.error is None else record.error.model_dump_json(),
        started_at=record.started_at,
        ended_at=record.ended_at,
        completed_order=record.completed_order,
        compensable=True,
    )


async def _not_found(run: Run, record: StepRecord) -> StepError:
    """A step is owed a compensation nobody can find: it is marked failed, with why."""
    why = "the workflow's code gives this step no compensation"
    if run.replay_stopped is not None and record.seq > run.replay_stopped[0]:
        why = run.replay_stopped[1]
    error = StepError(
        step=record.name,
        type="CompensationNotFound",
        message=f"the compensation of step {record.name!r} of run {run.id} cannot be found: "
        f"{why}; the step is not undone",
    )
    logger.error("compensation_not_found", run_id=run.id, step=record.name, reason=why)
    await _mark(run, record, StepStatus.COMPENSATION_FAILED, error)
    return error


async def _compensate(run: Run, compensator: Compensator, record: StepRecord) -> StepError | None:
    """Run one compensation, checkpointed before and after; its error if it failed for good."""
    await _mark(run, record, StepStatus.COMPENSATING)
    compensate = compensator.fn

    def call(number: int) -> Awaitable[Any]:
        ctx = run.step_context(record.name, record.seq, number)
        return call_step_fn(compensate, record.compensate_input, ctx)

    async def wait(failures: int, error: StepError, delay: float) -> None:
        logger.info(
            "compensation_retry_scheduled",
            run_id=run.id,
            step=record.name,
            failures=failures,
            delay_s=round(delay, 3),
            error=error.message,
        )
        await run.sleep(delay)

    outcome = await attempt(
        call,
        options=compensator.options,
        name=record.name,
        accept=lambda value: value,
        wait=wait,
        prior_failures=0,
    )
    if outcome.ok:
        await _mark(run, record, StepStatus.COMPENSATED)
        return None
    error = outcome.error or StepError(
        step=record.name, type="CompensationFailed", message="compensation failed"
    )
    await _mark(run, record, StepStatus.COMPENSATION_FAILED, error)
    return error


async def _mark(
    run: Run, record: StepRecord, status: StepStatus, error: StepError | None = None
) -> None:
    """Checkpoint the step's record with a new status (and the compensation's error).

    Everything else is kept, its completion order first (see the module's docstring).
    """
    write = _marking(record, status)
    if error is not None:
        write = dataclasses.replace(write, error=error.model_dump_json())
    kept = record.error if error is None else error
    await run.checkpoint(
        write, output=record.output, compensate_input=record.compensate_input, error=kept
    )


def _text(value: object) -> str | None:
    return None if value is None else dumps(value, "a stored value")
