"""Driving a durable workflow function (``@workflow``): replay, steps, sleeps, events.

The function runs from its start every time the run is driven. Each
``ctx.step`` takes the next sequence number: a step with a completed record
returns its stored result at once; the first step without one runs, and its
result is checkpointed before the function goes on. ``ctx.sleep`` records its
wake-up time and parks the run (the function is unwound, no worker is held);
the run is driven again, by replay, once it is due.

A run found ``compensating`` (a crash mid-rollback, or a cancel) is replayed
in a mode that only reads records, to learn each step's compensation, and
then rolled back. The replay goes through every record, whatever the
rollback did to it already: a step that completed returns its stored result
(``compensating`` or ``compensated`` since), one that failed raises its
failure again, so the function takes the path it took, however many times
the rollback was interrupted before.

The driver returns the status the run is left in; ``compensating`` means the
run must roll back, which the executor does.
"""

from __future__ import annotations

import functools
import inspect
import typing
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, TypeAdapter

from runtime.codec import dumps
from runtime.engine.run import Compensator, Run, logger
from runtime.engine.step_runner import record_failure, run_step
from runtime.errors import DefinitionError, NonDeterminismError, ReplayEnded, StepFailed, Suspended
from runtime.ids import new_id
from runtime.models import RunStatus, StepStatus
from runtime.sdk.durable import DurableWorkflow, WorkflowContext
from runtime.sdk.specs import check_event_name
from runtime.sdk.steps import (
    StepContext,
    StepDefinition,
    StepFn,
    StepOptions,
    call_step_fn,
    run_callable,
)
from runtime.store.changes import Sleep, Woke
from runtime.store.records import NewEvent, StagedEvent, StepWrite
from runtime.usercode import failure, is_failure


async def drive(run: Run, workflow: DurableWorkflow) -> RunStatus:
    """Drive a durable run until it ends, parks, pauses, is released or must roll back."""
    replay = Replay(run, replay_only=False)
    try:
        # Inside the try: an input that no longer validates (a scheduled input, a client's)
        # fails the run with the reason instead of stopping the worker.
        returned = await workflow.fn(replay.context(workflow))
        if run.control is not None:  # a request that came with the last checkpoint
            raise Suspended(await run.stop_here())
        output = workflow.check_output(returned)
    except Suspended as suspended:
        return suspended.status
    except BaseException as exc:
        if not is_failure(exc):  # a cancellation of ours; a sys.exit() in the code fails the run
            raise
        step = exc.step if isinstance(exc, StepFailed) else None
        return await run.fail(failure(exc, f"workflow {workflow.name!r}", step))
    return await run.complete(output, replay.pending_events())


async def learn_compensations(run: Run, workflow: DurableWorkflow) -> None:
    """Replay a ``compensating`` run's function over its records to find its compensations.

    Nothing runs: a step with a record returns (or raises) what it did; the first
    step without one ends the replay.
    """
    replay = Replay(run, replay_only=True)
    try:
        await workflow.fn(replay.context(workflow))
    except ReplayEnded:
        # The first step with no finished record: the run never went further.
        why = f"replaying the workflow function ended at step {replay.seq}, which never finished"
        run.replay_stopped = (replay.seq - 1, why)
    except BaseException as exc:
        # The step failure that failed the run, or the function failing outside a step as
        # it did then (a sys.exit() included, as drive() counts it); or the code changed.
        # A compensation of a later step the replay could not learn is reported as such
        # by the rollback.
        if not is_failure(exc):  # a cancellation of ours
            raise
        reached = replay.seq - 1 if isinstance(exc, NonDeterminismError) else replay.seq
        error = failure(exc, f"workflow {workflow.name!r}")
        why = f"replaying the workflow function ended before it: {error.type}: {error.message}"
        run.replay_stopped = (reached, why)
        if not isinstance(exc, StepFailed):
            logger.warning("replay_for_rollback_stopped", run_id=run.id, exc_info=True)


class Replay:
    """The engine side of a :class:`WorkflowContext` (its ``DurableSteps``): each
    ``ctx.step`` takes the next sequence number and returns its record's result, or runs."""

    def __init__(self, run: Run, *, replay_only: bool) -> None:
        self.run = run
        self.replay_only = replay_only
        self.seq = 0
        self.events: list[tuple[str, str, str]] = []

    def context(self, workflow: DurableWorkflow) -> WorkflowContext[Any]:
        """The ``ctx`` the workflow function is called with (its input validated)."""
        run = self.run
        return WorkflowContext(
            input=workflow.validate_input(run.input),
            run_id=run.id,
            workflow=workflow.name,
            version=run.version,
            logger=logger.bind(run_id=run.id, workflow=workflow.name),
            container=run.container,
            runner=self,
        )

    def _next(self, name: str) -> int:
        self.seq += 1
        record = self.run.records.get(self.seq)
        if record is not None and record.name != name:
            raise NonDeterminismError(self.run.id, self.seq, record.name, name)
        return self.seq

    async def _stop_point(self) -> None:
        """Before new work: obey an operator's request, or a shutdown."""
        if self.run.should_stop():
            raise Suspended(await self.run.stop_here())

    async def step(
        self, name: str, call: Any, options: dict[str, Any], definition: StepDefinition | None
    ) -> Any:
        run = self.run
        seq = self._next(name)
        step_options, compensate, invoke = _plan(name, call, options, definition)
        if compensate is not None:
            run.compensators[seq] = Compensator(compensate, step_options)
        adapter = _result_adapter(call.func if definition is None else None)
        record = run.records.get(seq)
        if record is not None:
            completed = record.status is StepStatus.COMPLETED or (
                record.completed_order is not None and record.status in _ROLLED_BACK
            )
            if completed or record.status is StepStatus.SKIPPED:
                self.events.clear()  # staged before this step: stored with its record
                return None if not completed else _revive(adapter, record.output)
            if record.status is StepStatus.FAILED or record.status in _ROLLED_BACK:
                # It failed itself (no completion order), and maybe its compensation ran.
                error = record.error
                raise StepFailed(
                    name,
                    error.type if error else "Error",
                    error.message if error else "failed",
                    run.id,
                )
        if self.replay_only:
            raise ReplayEnded
        await self._stop_point()
        result = await run_step(
            run,
            seq=seq,
            name=name,
            invoke=invoke,
            options=step_options,
            compensable=compensate is not None,
            record=record,
            may_park=run.interruptible,
            extra_events=self._staged(),
        )
        if result.ok:
            self.events.clear()
            return _revive(adapter, result.output)
        # A failed step keeps no events: those staged before it wait for the next checkpoint.
        await record_failure(
            run, seq, name, result, StepStatus.FAILED, compensable=compensate is not None
        )
        error_type = result.error.type if result.error is not None else "Error"
        message = result.error.message if result.error is not None else "failed"
        raise StepFailed(name, error_type, message, run.id) from result.exception

    async def sleep(self, name: str, seconds: float) -> None:
        run = self.run
        seq = self._next(name)
        record = run.records.get(seq)
        if record is not None and record.status is StepStatus.COMPLETED:
            self.events.clear()  # staged before this sleep: stored with its record
            return
        if self.replay_only:
            raise ReplayEnded
        now = run.now()
        if record is None:
            await self._stop_point()
            wake = now + timedelta(seconds=max(seconds, 0.0))
        else:
            wake = _wake_of(record.output) or now
        wake_at = {"wake_at": wake.isoformat()}
        started = record.started_at if record else now
        if wake <= now:
            write = StepWrite(
                seq=seq,
                name=name,
                status=StepStatus.COMPLETED,
                attempts=1,
                output=dumps(wake_at, "a sleep"),
                started_at=started,
                ended_at=now,
                events=self._take_events(),
            )
            await run.checkpoint(write, Woke(), output=wake_at)
            return
        write = StepWrite(
            seq=seq,
            name=name,
            status=StepStatus.RUNNING,
            attempts=1,
            output=dumps(wake_at, "a sleep"),
            started_at=started,
            events=self._take_events(),
        )
        await run.checkpoint(write, Sleep(wake), output=wake_at)
        logger.info("run_sleeping", run_id=run.id, step=name, wake_at=wake.isoformat())
        raise Suspended(RunStatus.SLEEPING)

    def emit(self, name: str, data: Any, metadata: dict[str, Any] | None) -> None:
        check_event_name(name)
        self.events.append(
            (
                name,
                dumps(data, f"the data of event {name!r}"),
                dumps(metadata or {}, f"the metadata of event {name!r}"),
            )
        )

    def _staged(self) -> tuple[StagedEvent, ...]:
        """Events the function staged since the last step, to keep with the next checkpoint.

        On replay the function stages them again at the same place, into the same
        (run, step, index) slots, so nothing is staged twice; a replayed step drops
        them (its record holds them already).
        """
        return tuple(StagedEvent(*event) for event in self.events)

    def _take_events(self) -> tuple[StagedEvent, ...]:
        taken = self._staged()
        self.events.clear()
        return taken

    def pending_events(self) -> tuple[NewEvent, ...]:
        """Events staged after the last step: published with the completion."""
        now = self.run.now()
        return tuple(
            NewEvent(
                id=new_id("evt"),
                name=e.name,
                data=e.data,
                metadata=e.metadata,
                occurred_at=now,
                available_at=now,
                source_run_id=self.run.id,
            )
            for e in self._take_events()
        )


_ROLLED_BACK = (StepStatus.COMPENSATING, StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED)
"""What the rollback makes of a step's record: its result (or failure) is still what it was."""


def _plan(
    name: str, call: Any, options: dict[str, Any], definition: StepDefinition | None
) -> tuple[StepOptions, StepFn | None, Any]:
    """(options, compensation, invoke) of a ``ctx.step`` call."""
    if definition is not None:
        step = definition

        def invoke_definition(ctx: StepContext) -> Any:
            return call_step_fn(step.invoke, call, ctx)

        return step.options, step.compensate_fn, invoke_definition
    given = dict(options)
    compensate = given.pop("compensate", None)
    if compensate is not None and not callable(compensate):
        raise DefinitionError(f"ctx.step({name!r}): compensate must be a function")
    try:
        step_options = StepOptions(**given)
    except (TypeError, DefinitionError) as exc:
        raise DefinitionError(f"ctx.step({name!r}): {exc}") from exc

    def invoke_plain(ctx: StepContext) -> Any:
        return run_callable(call)

    return step_options, compensate, invoke_plain


@functools.lru_cache(maxsize=1024)
def _result_adapter(fn: Any) -> TypeAdapter[Any] | None:
    """A validator for a step function's declared pydantic return type, if it has one."""
    if fn is None:
        return None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    kind: Any = hints.get("return")
    if inspect.isclass(kind) and issubclass(kind, BaseModel):
        return TypeAdapter(kind)
    if typing.get_origin(kind) is not None and any(
        inspect.isclass(arg) and issubclass(arg, BaseModel) for arg in typing.get_args(kind)
    ):
        return TypeAdapter(kind)
    return None


def _revive(adapter: TypeAdapter[Any] | None, value: Any) -> Any:
    """A stored result as the step returned it: its pydantic model again, when declared."""
    if adapter is None or value is None:
        return value
    return adapter.validate_python(value)


def _wake_of(output: Any) -> datetime | None:
    if isinstance(output, dict) and isinstance(output.get("wake_at"), str):
        return datetime.fromisoformat(output["wake_at"])
    return None
