"""Running one step, for both authoring styles: attempts, retries, parking, the checkpoint.

A step's success is checkpointed here, in one transaction with the run's
progress, before the caller goes on. Its failure is returned to the caller,
which knows what the failure means for the run (continue, skip, roll back, or
raise into a durable workflow's code) and records it with :func:`record_failure`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import anyio.lowlevel
from structlog.contextvars import bind_contextvars, reset_contextvars

from runtime.codec import dumps, loads, roundtrip
from runtime.engine.attempts import attempt
from runtime.engine.run import Completion, Run, logger
from runtime.errors import PermanentFailure, Suspended
from runtime.models import RunStatus, StepError, StepRecord, StepStatus
from runtime.retry import PARK_AFTER
from runtime.sdk.steps import StepContext, StepOptions, StepResponse
from runtime.store.changes import PROGRESS, Park, RunChange, StartRollback
from runtime.store.records import StagedEvent, StepWrite

Invoke = Callable[[StepContext], Any]
"""Calls the step's function with a context; may return an awaitable."""


@dataclasses.dataclass(slots=True)
class StepResult:
    """How a step ended: completed (``ok``), skipped, or failed for good."""

    ok: bool
    attempts: int
    output: Any = None
    skipped: bool = False
    error: StepError | None = None
    exception: BaseException | None = None
    compensate_input: Any = None
    started: datetime | None = None


async def run_step(
    run: Run,
    *,
    seq: int,
    name: str,
    invoke: Invoke,
    options: StepOptions,
    compensable: bool,
    record: StepRecord | None,
    may_park: bool,
    extra_events: tuple[StagedEvent, ...] = (),
    completion: Callable[[Any], Completion | None] | None = None,
) -> StepResult:
    """Run a step until it completes or fails for good; checkpoint a completion.

    ``completion``, given the step's output, may return the update that completes the
    run: it is then written in the step's own checkpoint (one commit fewer per run),
    unless an operator's request is pending, and ``run.completed`` says so.
    """
    # A cancel point between two steps: the store's checkpoints give the loop its turn
    # but are never cut off, so a deadline or cancellation that came due meanwhile is
    # obeyed here, before the next step starts, and the run is left resumable.
    await anyio.lowlevel.checkpoint_if_cancelled()
    started = run.now()
    encoded: list[Any] = []
    last_ctx: list[StepContext] = []  # the latest attempt's context: its staged events

    def call(number: int) -> Awaitable[Any]:
        ctx = run.step_context(name, seq, number)
        last_ctx[:] = [ctx]
        return _with_step(name, invoke, ctx)

    def accept(returned: Any) -> Any:
        if isinstance(returned, StepResponse):
            if returned.failure_message is not None:
                raise PermanentFailure(returned.failure_message, returned.compensate_input)
            if returned.skipped:
                return returned
            output, comp = returned.output, returned.compensate_input
        else:
            output = comp = returned
        out_text = dumps(output, f"the output of step {name!r}")
        comp_text = None
        if compensable:
            comp_text = (
                out_text
                if comp is output
                else dumps(comp, f"the compensate_input of step {name!r}")
            )
        encoded[:] = [out_text, comp_text]
        return returned

    async def wait(failures: int, error: StepError, delay: float) -> None:
        await _retry_wait(run, seq, name, failures, error, delay, started, may_park)

    outcome = await attempt(
        call,
        options=options,
        name=name,
        accept=accept,
        wait=wait,
        prior_failures=record.attempts if record is not None else 0,
    )
    if not outcome.ok:
        return StepResult(
            False,
            outcome.attempts,
            error=outcome.error,
            exception=outcome.exception,
            compensate_input=outcome.value,
            started=started,
        )
    if isinstance(outcome.value, StepResponse) and outcome.value.skipped:
        result = StepResult(True, outcome.attempts, skipped=True, started=started)
        await record_failure(run, seq, name, result, StepStatus.SKIPPED)
        return result
    out_text, comp_text = encoded
    output = roundtrip(
        outcome.value.output if isinstance(outcome.value, StepResponse) else outcome.value, out_text
    )
    staged = extra_events + tuple(StagedEvent(*e) for e in last_ctx[0].staged)
    ended = run.now()
    write = StepWrite(
        seq=seq,
        name=name,
        status=StepStatus.COMPLETED,
        attempts=outcome.attempts,
        output=out_text,
        compensate_input=comp_text,
        started_at=started,
        ended_at=ended,
        completed_order=run.take_order(),
        compensable=compensable,
        events=staged,
    )
    finish = completion(output) if completion is not None else None
    comp = loads(comp_text) if comp_text is not None else None
    await run.checkpoint(write, finish or PROGRESS, output=output, compensate_input=comp)
    run.telemetry.step_completed(run.workflow.name, (ended - started).total_seconds())
    return StepResult(True, outcome.attempts, output=output, started=started)


async def record_failure(
    run: Run,
    seq: int,
    name: str,
    result: StepResult,
    status: StepStatus,
    *,
    trigger: bool = False,
    compensable: bool = False,
) -> None:
    """Checkpoint a step that did not complete (skipped, or failed).

    With ``trigger`` the same transaction turns the run ``compensating``: the step's
    failure rolls the run back.
    """
    comp_text = None
    if compensable and result.compensate_input is not None:
        try:
            comp_text = dumps(result.compensate_input, f"the compensate_input of step {name!r}")
        except Exception as exc:
            logger.warning("compensate_input_dropped", run_id=run.id, step=name, error=str(exc))
    error = result.error
    error_text = error.model_dump_json() if error is not None else None
    now = run.now()
    started = result.started or now
    write = StepWrite(
        seq=seq,
        name=name,
        status=status,
        attempts=result.attempts,
        compensate_input=comp_text,
        error=error_text,
        started_at=started,
        ended_at=now,
        compensable=compensable,
    )
    change: RunChange = PROGRESS
    if trigger:
        if run.error is None:
            run.error = error
        change = StartRollback(error_text)
    await run.checkpoint(write, change, compensate_input=loads(comp_text), error=error)
    if status is StepStatus.FAILED:
        run.telemetry.step_failed(run.workflow.name, (now - started).total_seconds())


async def _retry_wait(
    run: Run,
    seq: int,
    name: str,
    failures: int,
    error: StepError,
    delay: float,
    started: datetime,
    may_park: bool,
) -> None:
    """Record a failed attempt, then wait for the next.

    A long wait of a run the worker drives parks it (``sleeping``, released, due
    later) instead of holding a worker: the worker resumes it when it is due.
    """
    now = run.now()
    write = StepWrite(
        seq=seq,
        name=name,
        status=StepStatus.RUNNING,
        attempts=failures,
        error=error.model_dump_json(),
        started_at=started,
    )
    logger.info(
        "step_retry_scheduled",
        run_id=run.id,
        step=name,
        failures=failures,
        delay_s=round(delay, 3),
        error=error.message,
    )
    if may_park and delay >= PARK_AFTER:
        await run.checkpoint(write, Park(now + timedelta(seconds=delay)), error=error)
        raise Suspended(RunStatus.SLEEPING)
    await run.checkpoint(write, error=error)
    await run.sleep(delay)


async def _with_step(name: str, invoke: Invoke, ctx: StepContext) -> Any:
    """Call the step with its name bound to every log line written meanwhile."""
    # bind/reset rather than the bound_contextvars() context manager: a quarter of the cost.
    tokens = bind_contextvars(step=name)
    try:
        value = invoke(ctx)
        if isinstance(value, Awaitable):
            return await value
        return value
    finally:
        reset_contextvars(**tokens)
