"""The saga executor: start or resume a run, drive it, end it.

A run's life, as the store sees it: inserted ``running`` (held by this
worker) or ``pending`` (for the worker); one checkpoint per step, committed
before the next step starts; on a step's permanent failure the same
checkpoint turns the run ``compensating``, and :mod:`runtime.engine.rollback`
undoes what was done; the last write ends it and releases it. Whatever was
committed is never done again: a resumed run replays, taking each committed
step's result from its record.

The two authoring styles differ only in their driver, chosen by the
workflow's class: :mod:`runtime.engine.graph_driver` walks a recorded graph,
:mod:`runtime.engine.replay_driver` replays a workflow function. Both work on
a :class:`~runtime.engine.run.Run` and return the status they leave it in;
``compensating`` means it must roll back, which is done here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, assert_never

import anyio
import anyio.lowlevel
import structlog

from runtime.clock import Clock
from runtime.codec import dumps
from runtime.engine import replay_driver, rollback
from runtime.engine.graph_driver import GraphDriver
from runtime.engine.leases import LEASE_TTL, WorkerIdentity, process_alive
from runtime.engine.run import Run, log_run_end, logger
from runtime.errors import LeaseLostError, RunNotFoundError, StepFailed, Suspended
from runtime.ids import new_id
from runtime.models import Control, RunKind, RunRecord, RunStatus, StepError, StepRecord
from runtime.registry import Registry
from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.definitions import WorkflowDefinition, stored_input
from runtime.sdk.durable import DurableWorkflow
from runtime.sdk.running import WorkflowResult
from runtime.sdk.specs import derived_transaction_id
from runtime.sdk.steps import StepContext
from runtime.store.base import Store
from runtime.store.records import NewRun
from runtime.telemetry import Telemetry

if TYPE_CHECKING:
    from runtime.container import Container

JOIN_POLL_MIN = 0.05
JOIN_POLL_MAX = 1.0


class Engine:
    """Runs workflows durably on a :class:`Store`.

    Args:
        store: where state lives.
        registry: the workflows this runtime knows (runs through it register there).
        clock: time source.
        identity: this worker (the owner written on the runs it holds).
        on_run_ended: called with the run id whenever this worker stops driving a run
            (it may have ended, and published events).
        telemetry: where the steps that end are counted (``GET /metrics``); a fresh
            one, read by nobody, if omitted.
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        clock: Clock,
        identity: WorkerIdentity,
        *,
        on_run_ended: Callable[[str], None] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.registry = registry
        self.clock = clock
        self.identity = identity
        self._on_run_ended = on_run_ended
        self._active: dict[str, anyio.Event] = {}
        self._draining = False

    @property
    def owner_id(self) -> str:
        """This worker's id: the owner of the runs it holds."""
        return self.identity.id

    @property
    def draining(self) -> bool:
        """Shutting down: runs the worker drives stop before their next step."""
        return self._draining

    def drain(self) -> None:
        """Stop the runs the worker drives before their next step (they go back to the queue)."""
        self._draining = True

    @property
    def active_runs(self) -> list[str]:
        """Ids of the runs this worker is driving now."""
        return list(self._active)

    # -- starting runs ----------------------------------------------------------

    async def run_inline(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        input: Any,
        transaction_id: str | None,
        *,
        parent_run_id: str | None = None,
    ) -> WorkflowResult:
        """Start (or, with a known ``transaction_id``, resume or read) a run; drive it here.

        Returns when the run ends, waiting through sleeps and pauses.
        """
        self.registry.ensure(workflow)
        if transaction_id is None:
            transaction_id = derived_transaction_id(workflow.name)
        input_text = dumps(
            stored_input(workflow, input), f"the input of workflow {workflow.name!r}"
        )
        now = self.clock.now()
        record, created = await self.store.create_run(
            NewRun(
                id=new_id("run"),
                workflow=workflow.name,
                version=workflow.version,
                kind=workflow.kind,
                idempotency_key=transaction_id,
                status=RunStatus.RUNNING,
                input=input_text,
                owner_id=self.identity.id,
                parent_run_id=parent_run_id,
                available_at=now,
                created_at=now,
            )
        )
        if created:
            result = await self.drive(workflow, container, record, [])
            if result.status.terminal:
                return result
            record = await self.store.get_run(record.id, steps=False)
        return await self._join(workflow, container, record)

    async def enqueue(
        self,
        workflow: WorkflowDefinition,
        input: Any,
        *,
        idempotency_key: str | None = None,
        delay: float = 0.0,
    ) -> tuple[RunRecord, bool]:
        """Start a background run: stored ``pending``, unowned, due after ``delay`` seconds.

        Returns the run and whether it was created (an existing idempotency key returns
        the run it started).
        """
        self.registry.ensure(workflow)
        if idempotency_key is None:
            idempotency_key = derived_transaction_id(workflow.name)
        run = pending_run(
            workflow.name,
            stored_input(workflow, input),
            version=workflow.version,
            kind=workflow.kind,
            idempotency_key=idempotency_key,
            now=self.clock.now(),
            delay=delay,
        )
        await anyio.lowlevel.checkpoint_if_cancelled()  # store writes are not cancel points
        return await self.store.create_run(run)

    async def resume(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        record: RunRecord,
        *,
        interruptible: bool = False,
    ) -> WorkflowResult | None:
        """Take over an unheld run and drive it.

        Returns ``None`` when another worker, or another task of this one, got it first.
        ``interruptible`` runs (the worker's) stop before their next step when the
        engine drains, and park long waits instead of holding a worker.
        """
        if record.id in self._active:
            return None
        pin = (workflow.version, workflow.kind) if record.kind is RunKind.UNRESOLVED else None
        # Marked active before the claim is awaited, so that no other task of this
        # process can see the run owned by us yet undriven and take it a second time.
        with self._activity(record.id):
            claimed = await self.store.claim_run(
                record.id, self.identity.id, record.owner_id, self.clock.now(), pin=pin
            )
            if claimed is None:
                return None
            steps = await self.store.load_steps(record.id)
            return await self._drive(workflow, container, claimed, steps, interruptible)

    async def _join(
        self, workflow: WorkflowDefinition, container: Container, record: RunRecord
    ) -> WorkflowResult:
        """Wait for, take over when due, or read a run that already exists."""
        poll = JOIN_POLL_MIN
        while True:
            if record.status.terminal:
                return self.result_of(record, await self.store.load_steps(record.id))
            event = self._active.get(record.id)
            wait = (record.available_at - self.clock.now()).total_seconds()
            if event is not None:
                await event.wait()
            elif record.status is RunStatus.PAUSED or (
                await self._held_by_live_worker(record.owner_id)
            ):
                await self.clock.sleep(poll)
                poll = min(poll * 2, JOIN_POLL_MAX)
            elif record.status in (RunStatus.PENDING, RunStatus.SLEEPING) and wait > 0:
                await self.clock.sleep(min(wait, JOIN_POLL_MAX))
            else:
                resumed = await self.resume(workflow, container, record)
                if resumed is not None and resumed.status.terminal:
                    return resumed
            record = await self.store.get_run(record.id, steps=False)

    async def _held_by_live_worker(self, owner_id: str | None) -> bool:
        if owner_id is None:
            return False
        if owner_id == self.identity.id:
            # Ours but not being driven (its drive was cut off): take it back.
            return False
        stale_before = self.clock.now() - timedelta(seconds=LEASE_TTL)
        for worker in await self.store.list_workers():
            if worker.id == owner_id:
                if worker.heartbeat_at < stale_before:
                    return False
                return worker.host != self.identity.host or process_alive(worker.pid)
        return False

    # -- driving a run ----------------------------------------------------------

    async def drive(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        record: RunRecord,
        steps: list[StepRecord],
    ) -> WorkflowResult:
        """Drive a run this worker holds until it ends (or stops: paused, parked)."""
        with self._activity(record.id):
            return await self._drive(workflow, container, record, steps)

    @contextlib.contextmanager
    def _activity(self, run_id: str) -> Iterator[None]:
        """Mark ``run_id`` as driven by this process; waiters wake when it ends."""
        if run_id in self._active:
            raise RuntimeError(f"run {run_id} is already being driven by this worker")
        done = anyio.Event()
        self._active[run_id] = done
        try:
            yield
        finally:
            del self._active[run_id]
            done.set()
            if self._on_run_ended is not None:
                self._on_run_ended(run_id)

    async def _drive(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        record: RunRecord,
        steps: list[StepRecord],
        interruptible: bool = False,
    ) -> WorkflowResult:
        run = Run(self, workflow, container, record, steps, interruptible=interruptible)
        log = logger.bind(run_id=record.id, workflow=workflow.name)
        try:
            # Every log line written while the run is driven (the user's own structlog
            # loggers included) carries the run and the workflow.
            with structlog.contextvars.bound_contextvars(run_id=record.id, workflow=workflow.name):
                status = await self._run(run, record)
        except Suspended as suspended:
            status = suspended.status
        except LeaseLostError:
            log.warning("lease_lost")
            raise
        except BaseException:
            # Cut off (the caller's task cancelled, a handler's timeout, a bug): hand the
            # run back, so that it is resumed rather than held by a live worker forever.
            await self._hand_back(run)
            raise
        log.debug("run_driven", status=status.value)
        log_run_end(record.id, workflow.name, status, run.error, run.records.values())
        return WorkflowResult(
            result=run.output if status is RunStatus.COMPLETED else None,
            run_id=run.id,
            status=status,
            errors=_errors(list(run.records.values()), run.error),
        )

    async def _hand_back(self, run: Run) -> None:
        """Release a run whose driving was cut off: ``pending`` (or still compensating)."""
        now = self.clock.now()
        with anyio.CancelScope(shield=True):
            try:
                released = await self.store.defer_run(run.id, self.identity.id, None, now)
            except Exception:  # the store itself may be what failed; the lease then expires
                logger.exception("run_release_failed", run_id=run.id)
                return
        if released:
            logger.info("run_released", run_id=run.id, reason="interrupted")

    async def _run(self, run: Run, record: RunRecord) -> RunStatus:
        """Drive forward (or, for a run found ``compensating``, learn its compensations);
        roll back when that leaves the run ``compensating``."""
        rolling_back = record.status is RunStatus.COMPENSATING
        final = record.rollback_status or (
            RunStatus.CANCELED if record.control is Control.CANCEL else RunStatus.FAILED
        )
        match run.workflow:
            case DurableWorkflow() as workflow if rolling_back:
                await replay_driver.learn_compensations(run, workflow)
                status = RunStatus.COMPENSATING
            case DurableWorkflow() as workflow:
                status = await replay_driver.drive(run, workflow)
            case CompositionWorkflow() as workflow:
                driver = GraphDriver(run, workflow)
                status = RunStatus.COMPENSATING if rolling_back else await driver.forward()
            case _:
                assert_never(run.workflow)
        if status is RunStatus.COMPENSATING:
            return await rollback.roll_back(run, final)
        return status

    # -- results --------------------------------------------------------------------

    def result_of(self, record: RunRecord, steps: list[StepRecord]) -> WorkflowResult:
        """The result of a run as stored."""
        return WorkflowResult(
            result=record.output if record.status is RunStatus.COMPLETED else None,
            run_id=record.id,
            status=record.status,
            errors=_errors(steps, record.error),
        )

    # -- hooks for steps (EngineHooks) --------------------------------------------

    async def run_child(
        self, ctx: StepContext, workflow: WorkflowDefinition, input: Any
    ) -> tuple[str, Any]:
        """``run_as_step``: run ``workflow`` as a child of the step's run, keyed by the step.

        The child's transaction id is the step's idempotency key, so a resumed parent
        finds its child. A child that already ended ``failed`` or ``canceled`` (the step
        failed with it, or the parent's rollback compensated it) belongs to an earlier
        attempt: the step running again (the parent was retried) starts a new child, with
        this attempt's input, keyed ``"<key>:2"``, ``"<key>:3"``...
        """
        key, generation = ctx.idempotency_key, 1
        while (earlier := await self.store.find_run(workflow.name, key)) is not None and (
            earlier.status in (RunStatus.FAILED, RunStatus.CANCELED)
        ):
            generation += 1
            key = f"{ctx.idempotency_key}:{generation}"
        result = await self.run_inline(
            workflow, ctx.container, input, key, parent_run_id=ctx.run_id
        )
        if result.status is not RunStatus.COMPLETED:
            first = result.errors[0] if result.errors else None
            raise StepFailed(
                first.step if first and first.step else workflow.name,
                first.type if first else "RunFailed",
                f"child run {result.run_id} of {workflow.name!r} ended {result.status.value}"
                + (f": {first.message}" if first else ""),
            )
        return result.run_id, result.result

    async def roll_back_child(self, ctx: StepContext, child_run_id: str) -> None:
        """Compensate a completed child run's steps (the parent rolls back); it ends canceled."""
        while True:
            try:
                record = await self.store.get_run(child_run_id, steps=False)
            except RunNotFoundError:
                return
            if record.status is not RunStatus.COMPLETED:
                if record.status.terminal:
                    return
                # A child still compensating (an earlier attempt crashed): finish it.
                workflow = self.registry.get(record.workflow, record.version)
                await self._join(workflow, ctx.container, record)
                return
            claimed = await self.store.transition(
                child_run_id,
                (RunStatus.COMPLETED,),
                RunStatus.COMPENSATING,
                self.clock.now(),
                owner_id=self.identity.id,
                rollback_status=RunStatus.CANCELED,
            )
            if claimed is None:
                continue
            workflow = self.registry.get(record.workflow, record.version)
            await self.drive(
                workflow, ctx.container, claimed, await self.store.load_steps(child_run_id)
            )
            return


def pending_run(
    workflow: str,
    input: Any,
    *,
    version: str | None,
    kind: RunKind,
    idempotency_key: str | None,
    now: datetime,
    delay: float = 0.0,
) -> NewRun:
    """A background run to insert: ``pending``, unowned, due after ``delay`` seconds.

    ``kind=RunKind.UNRESOLVED`` (a run started by name alone, from a client) takes the
    version the first worker to drive it resolves, and keeps it.
    """
    return NewRun(
        id=new_id("run"),
        workflow=workflow,
        version=version,
        kind=kind,
        idempotency_key=idempotency_key,
        status=RunStatus.PENDING,
        input=dumps(input, f"the input of workflow {workflow!r}"),
        owner_id=None,
        parent_run_id=None,
        available_at=now + timedelta(seconds=max(delay, 0.0)),
        created_at=now,
    )


def _errors(steps: list[StepRecord], run_error: StepError | None) -> list[StepError]:
    """The error that ended the run first, then every other step's error, in step order.

    A failed step keeps its error after its own compensation ran (it is then
    ``compensated``), so every failed parallel sibling is listed.
    """
    errors = [run_error] if run_error is not None else []
    seen = {(e.step, e.type, e.message) for e in errors}
    for step in sorted(steps, key=lambda s: s.seq):
        error = step.error
        if error is not None and (error.step, error.type, error.message) not in seen:
            seen.add((error.step, error.type, error.message))
            errors.append(error)
    return errors
