"""A run this worker drives: its step records, the operator's request, and its checkpoints.

:class:`Run` is the one object the drivers (:mod:`~runtime.engine.graph_driver`,
:mod:`~runtime.engine.replay_driver`), the step runner and the rollback share
about a run. Every write they make goes through :meth:`Run.checkpoint`, which
commits it and then keeps, in one place, what the commit means in memory: the
operator's request read back in the same transaction, the step's record, and
whether the run just completed. The run reaches the engine that drives it only
through the narrow :class:`Host` protocol, so nothing here imports the executor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from runtime.clock import Clock
from runtime.codec import dumps, roundtrip
from runtime.models import (
    CANCELED_BY_OPERATOR,
    Control,
    RunRecord,
    RunStatus,
    StepError,
    StepRecord,
    StepStatus,
)
from runtime.sdk.definitions import WorkflowDefinition
from runtime.sdk.steps import EngineHooks, StepContext, StepFn, StepOptions
from runtime.store.base import Store
from runtime.store.changes import (
    PROGRESS,
    Complete,
    Pause,
    Release,
    RunChange,
    StartRollback,
)
from runtime.store.records import NewEvent, StepWrite
from runtime.telemetry import Telemetry
from runtime.usercode import failure, is_failure

if TYPE_CHECKING:
    from runtime.container import Container

logger = structlog.get_logger("runtime.engine")


class Host(EngineHooks, Protocol):
    """What a run needs of the engine driving it (implemented by ``Engine``)."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def owner_id(self) -> str:
        """This worker: the owner every checkpoint is made as."""
        ...

    @property
    def draining(self) -> bool:
        """The engine is shutting down: runs the worker drives stop before their next step."""
        ...

    @property
    def telemetry(self) -> Telemetry:
        """Where the steps that end are counted."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Compensator:
    """How to undo one step: its compensation function and the options to retry it with.

    ``own`` says whether the step's own compensation runs when the step itself failed
    (not for failures let through by ``continue``/``skip_on_permanent_failure``).
    """

    fn: StepFn
    options: StepOptions
    own: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    """The change that ends a run ``completed``, and its output as a caller sees it."""

    change: Complete
    output: Any


class Run:
    """A run held by this worker, while it is driven.

    Attributes:
        id: the run's id.
        workflow: its definition.
        container: the services its steps resolve.
        records: its step records by sequence number, as committed.
        control: the operator's request (pause, cancel) read at the last checkpoint.
        error: the error that ended (or is ending) the run.
        interruptible: driven by the worker: stop before the next step when the engine
            drains, and park long retry waits (a run driven by ``run()`` in a caller's
            task waits in memory).
        compensators: each step's compensation, as the driver learned it.
        replay_stopped: where and why a durable run's read-only replay ended early
            (the last step it reached; the reason the rollback gives for a later step's
            compensation, which the replay could not learn).
        input: its input, as stored.
        version: the version it started with (it keeps it for its whole life).
        completed: the run completed in the last checkpoint (``output`` is its output).
        output: the run's output, once it completed.
    """

    __slots__ = (
        "_host",
        "_next_order",
        "compensators",
        "completed",
        "container",
        "control",
        "error",
        "id",
        "input",
        "interruptible",
        "output",
        "records",
        "replay_stopped",
        "version",
        "workflow",
    )

    def __init__(
        self,
        host: Host,
        workflow: WorkflowDefinition,
        container: Container,
        record: RunRecord,
        steps: Iterable[StepRecord],
        *,
        interruptible: bool,
    ) -> None:
        self._host = host
        self.workflow = workflow
        self.container = container
        self.id = record.id
        self.input = record.input
        self.version = record.version
        self.control: Control | None = record.control
        self.error: StepError | None = record.error
        self.records = {s.seq: s for s in steps}
        self._next_order = max((s.completed_order or 0 for s in self.records.values()), default=0)
        self.interruptible = interruptible
        self.compensators: dict[int, Compensator] = {}
        self.replay_stopped: tuple[int, str] | None = None
        self.completed = False
        self.output: Any = None

    # -- time and the engine -------------------------------------------------------

    def now(self) -> datetime:
        """The engine clock's time."""
        return self._host.clock.now()

    async def sleep(self, seconds: float) -> None:
        """Wait on the engine's clock (a retry's backoff)."""
        await self._host.clock.sleep(seconds)

    def should_stop(self) -> bool:
        """Whether the driver must stop before its next step (:meth:`stop_here`)."""
        return self.control is not None or (self.interruptible and self._host.draining)

    def step_context(self, name: str, seq: int, attempt: int) -> StepContext:
        """What a step's function (or its compensation) receives as ``ctx``."""
        return StepContext(
            container=self.container,
            run_id=self.id,
            workflow=self.workflow.name,
            step=name,
            seq=seq,
            attempt=attempt,
            logger=logger,
            hooks=self._host,
        )

    @property
    def telemetry(self) -> Telemetry:
        """Where the engine counts the steps that end (``GET /metrics``)."""
        return self._host.telemetry

    def take_order(self) -> int:
        """The completion order of the step completing now (1, 2, 3 ... per run)."""
        self._next_order += 1
        return self._next_order

    # -- the checkpoint ----------------------------------------------------------

    async def checkpoint(
        self,
        write: StepWrite | None = None,
        change: RunChange | Completion = PROGRESS,
        *,
        output: Any = None,
        compensate_input: Any = None,
        error: StepError | None = None,
    ) -> None:
        """Commit ``write`` (a step's new record) and ``change`` (the run's) in one transaction.

        Then keep what the commit means: the operator's request it read back, the
        step's record (with ``output``, ``compensate_input`` and ``error`` as values,
        already valid), and, for a :class:`Completion` the store applied (no request
        was pending), the run's output.

        Raises:
            LeaseLostError: another worker holds the run now.
        """
        run_change = change.change if isinstance(change, Completion) else change
        writes = () if write is None else (write,)
        host = self._host
        self.control = await host.store.checkpoint(
            self.id, host.owner_id, writes, run_change, self.now()
        )
        if write is not None:
            self.records[write.seq] = StepRecord.model_construct(
                run_id=self.id,
                seq=write.seq,
                name=write.name,
                status=write.status,
                attempts=write.attempts,
                output=output,
                compensate_input=compensate_input,
                error=error,
                started_at=write.started_at,
                ended_at=write.ended_at,
                completed_order=write.completed_order,
                compensable=write.compensable,
            )
        if isinstance(change, Completion) and self.control is None:
            self.completed, self.output = True, change.output

    async def requested_rollback_status(self) -> RunStatus | None:
        """The status an operator's cancel asked the rollback to end in, if one landed."""
        current = await self._host.store.get_run(self.id, steps=False)
        return current.rollback_status

    # -- how a run stops -----------------------------------------------------------

    async def stop_here(self) -> RunStatus:
        """Obey an operator's request (or a shutdown) between two steps.

        ``pause``: the run is paused and released. ``cancel``: it is marked
        ``compensating`` (to end canceled) and the caller rolls it back. A shutdown
        hands the run back to the queue as ``pending``.
        """
        if self.control is Control.PAUSE:
            await self.checkpoint(change=Pause())
            logger.info("run_paused", run_id=self.id)
            return RunStatus.PAUSED
        if self.control is Control.CANCEL:
            if self.error is None:
                self.error = CANCELED_BY_OPERATOR
            await self.checkpoint(change=StartRollback(self.error.model_dump_json(), cancel=True))
            logger.info("run_canceling", run_id=self.id)
            return RunStatus.COMPENSATING
        await self.checkpoint(change=Release(self.now()))
        logger.info("run_released", run_id=self.id, reason="shutdown")
        return RunStatus.PENDING

    async def fail(self, error: StepError) -> RunStatus:
        """Something other than a step's own failure ends the run: it rolls back from here.

        Returns ``compensating``: the caller rolls the run back.
        """
        if self.error is None:
            self.error = error
        await self.checkpoint(change=StartRollback(error.model_dump_json()))
        return RunStatus.COMPENSATING

    async def complete(self, output: Any, events: tuple[NewEvent, ...] = ()) -> RunStatus:
        """End the run ``completed`` with ``output``; its staged events are published.

        An operator's request that arrived meanwhile is obeyed instead; an output that
        cannot be stored fails the run. ``compensating``: the caller rolls the run back.
        """
        try:
            finish = self.completion(output, events)
        except BaseException as exc:  # a serializer of the user's model may be what raised
            if not is_failure(exc):
                raise
            return await self.fail(failure(exc, f"the result of workflow {self.workflow.name!r}"))
        await self.checkpoint(change=finish)
        if self.control is not None:
            return await self.stop_here()
        return RunStatus.COMPLETED

    def completion(self, output: Any, events: tuple[NewEvent, ...] = ()) -> Completion:
        """The update that ends the run ``completed`` with ``output``.

        Raises:
            SerializationError: the output cannot be stored.
        """
        text = dumps(output, f"the result of workflow {self.workflow.name!r}")
        change = Complete(output=text, ended_at=self.now(), events=events)
        return Completion(change, roundtrip(output, text))


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
