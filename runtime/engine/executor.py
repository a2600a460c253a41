"""The saga executor for composition workflows: start or resume a run, drive it.

A run's life, as the store sees it: inserted ``running`` and held by this
worker; one checkpoint per step, committed before the next step starts; on a
step's permanent failure the same checkpoint turns the run ``compensating``,
and :mod:`runtime.engine.compensation` undoes what was done; the last write
ends it and releases it. Whatever was committed is never done again: a resumed
run replays the graph, taking each committed step's output from its record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from runtime.clock import Clock
from runtime.codec import dumps, loads, roundtrip
from runtime.engine import compensation
from runtime.engine.attempts import Attempted, PermanentFailure, attempt
from runtime.engine.leases import LEASE_TTL, WorkerIdentity, process_alive
from runtime.engine.state import RunState, logger, step_error, stored_error
from runtime.errors import (
    LeaseLostError,
    NonDeterminismError,
    RunNotFoundError,
    StepFailed,
    StoredError,
)
from runtime.ids import new_id
from runtime.models import RunRecord, RunStatus, StepError, StepRecord, StepStatus
from runtime.registry import Registry
from runtime.retry import PARK_AFTER
from runtime.sdk.graph import ComputeNode, Node, StepNode
from runtime.sdk.refs import INPUT, resolve
from runtime.sdk.steps import StepContext, StepResponse, call_step_fn
from runtime.sdk.workflows import WorkflowDefinition, WorkflowResult
from runtime.specs import derived_transaction_id
from runtime.store.base import NewRun, RunUpdate, StagedEvent, StepWrite, Store

if TYPE_CHECKING:
    from runtime.container import Container

JOIN_POLL_MIN = 0.05
JOIN_POLL_MAX = 1.0


class Engine:
    """Runs composition workflows durably on a :class:`Store`.

    Args:
        store: where state lives.
        registry: the workflows this runtime knows (runs through it register there).
        clock: time source.
        identity: this worker (the owner written on the runs it holds).
    """

    def __init__(
        self, store: Store, registry: Registry, clock: Clock, identity: WorkerIdentity
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.identity = identity
        self._active: dict[str, anyio.Event] = {}
        self.draining = False
        """Set on shutdown: interruptible runs stop before their next step and are released."""
        self.on_run_ended: Callable[[str], None] | None = None
        """Called with the run id whenever this worker stops driving a run."""

    @property
    def active_runs(self) -> list[str]:
        """Ids of the runs this worker is driving now."""
        return list(self._active)

    # -- entry points ---------------------------------------------------

    async def run_composition(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        input: Any,
        transaction_id: str | None,
        *,
        parent_run_id: str | None = None,
    ) -> WorkflowResult:
        """Start (or, with a known ``transaction_id``, resume or read) a run and drive it."""
        self.registry.ensure(workflow)
        if transaction_id is None:
            transaction_id = derived_transaction_id(workflow.name)
        input_text = dumps(input, f"the input of workflow {workflow.name!r}")
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
            return await self.drive(workflow, container, record, [])
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
            input,
            version=workflow.version,
            kind=workflow.kind,
            idempotency_key=idempotency_key,
            now=self.clock.now(),
            delay=delay,
        )
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
        ``interruptible`` runs stop before their next step when the engine drains.
        """
        if record.id in self._active:
            return None
        # Marked active before the claim is awaited, so that no other task of this
        # process can see the run owned by us yet undriven and take it a second time.
        with self._activity(record.id):
            claimed = await self.store.claim_run(
                record.id, self.identity.id, record.owner_id, self.clock.now()
            )
            if claimed is None:
                return None
            steps = await self.store.load_steps(record.id)
            return await self._drive(workflow, container, claimed, steps, interruptible)

    async def _join(
        self, workflow: WorkflowDefinition, container: Container, record: RunRecord
    ) -> WorkflowResult:
        """Wait for, take over, or read a run that already exists."""
        poll = JOIN_POLL_MIN
        while True:
            if record.status.terminal:
                return self.result_of(record, await self.store.load_steps(record.id))
            event = self._active.get(record.id)
            if event is not None:
                await event.wait()
            elif not await self._held_by_live_worker(record.owner_id):
                resumed = await self.resume(workflow, container, record)
                if resumed is not None:
                    return resumed
            else:
                await self.clock.sleep(poll)
                poll = min(poll * 2, JOIN_POLL_MAX)
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

    # -- driving a run --------------------------------------------------

    async def drive(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        record: RunRecord,
        steps: list[StepRecord],
    ) -> WorkflowResult:
        """Drive a run this worker holds until it ends (or its lease is lost)."""
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
            if self.on_run_ended is not None:
                self.on_run_ended(run_id)

    async def _drive(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        record: RunRecord,
        steps: list[StepRecord],
        interruptible: bool = False,
    ) -> WorkflowResult:
        state = RunState(
            run_id=record.id,
            workflow=workflow,
            container=container,
            values={INPUT: record.input},
            records={s.seq: s for s in steps},
            next_order=max((s.completed_order or 0 for s in steps), default=0) + 1,
            error=stored_error(record.error),
        )
        log = logger.bind(run_id=record.id, workflow=workflow.name)
        try:
            if record.status is RunStatus.COMPENSATING:
                final = record.rollback_status or RunStatus.FAILED
                status = await compensation.roll_back(self, state, final)
            else:
                status = await self._forward(state, interruptible)
            log.debug("run_ended", status=status.value)
            return self.result_of_state(state, status)
        except LeaseLostError:
            log.warning("lease_lost")
            raise

    async def _forward(self, state: RunState, interruptible: bool = False) -> RunStatus:
        for stage in state.workflow.graph.stages:
            if interruptible and self.draining:
                return await self._release(state)
            if len(stage) == 1:
                ok = await self._node(state, stage[0])
            else:
                ok = await self._parallel(state, stage)
            if not ok:
                return await compensation.roll_back(self, state)
        return await self._complete(state)

    async def _parallel(self, state: RunState, stage: tuple[Node, ...]) -> bool:
        outcomes: list[bool] = []

        async def one(node: Node) -> None:
            outcomes.append(await self._node(state, node))

        async with anyio.create_task_group() as tg:
            for node in stage:
                tg.start_soon(one, node)
        return all(outcomes)

    async def _node(self, state: RunState, node: Node) -> bool:
        """Run one node; False when it failed for good (the run must roll back)."""
        if isinstance(node, ComputeNode):
            return await self._compute(state, node)
        record = state.records.get(node.seq)
        if record is not None:
            if record.name != node.key:
                raise NonDeterminismError(state.run_id, node.seq, record.name, node.key)
            if record.status is StepStatus.COMPLETED:
                state.values[node.key] = record.output
                return True
            if record.status in (StepStatus.SKIPPED, StepStatus.FAILED):
                state.values[node.key] = None
                return record.status is StepStatus.SKIPPED or _continues(node)
        try:
            if not _conditions_hold(node.conditions, state.values):
                state.values[node.key] = None
                return True
            step_input = resolve(node.input, state.values)
        except Exception as exc:
            return await self._fail_run(state, StoredError.from_exception(exc, node.key))
        return await self._run_step(state, node, step_input, record)

    async def _compute(self, state: RunState, node: ComputeNode) -> bool:
        try:
            if not _conditions_hold(node.conditions, state.values):
                state.values[node.key] = None
                return True
            value = resolve(node.values, state.values)
            for fn in node.fns:
                value = fn(value)
        except Exception as exc:
            return await self._fail_run(state, StoredError.from_exception(exc, node.key))
        state.values[node.key] = value
        return True

    async def _run_step(
        self, state: RunState, node: StepNode, step_input: Any, record: StepRecord | None
    ) -> bool:
        step = node.step
        started = self.clock.now()
        has_compensation = bool(step.compensation)
        encoded: list[Any] = []
        attempt_ctx: list[StepContext] = []  # the latest attempt's context: its staged events

        def call(number: int) -> Any:
            ctx = StepContext(
                container=state.container, run_id=state.run_id, workflow=state.workflow.name,
                step=node.key, attempt=number, logger=logger, hooks=self,
            )  # fmt: skip
            attempt_ctx[:] = [ctx]
            return call_step_fn(step.invoke, step_input, ctx)

        def accept(returned: Any) -> Any:
            if isinstance(returned, StepResponse):
                if returned.failure_message is not None:
                    raise PermanentFailure(returned.failure_message, returned.compensate_input)
                if returned.skipped:
                    return returned
                output, comp = returned.output, returned.compensate_input
            else:
                output = comp = returned
            out_text = dumps(output, f"the output of step {node.key!r}")
            comp_text = None
            if has_compensation:
                comp_text = (
                    out_text if comp is output
                    else dumps(comp, f"the compensate_input of step {node.key!r}")
                )  # fmt: skip
            encoded[:] = [out_text, comp_text]
            return returned

        async def wait(failures: int, error: StoredError, delay: float) -> None:
            await self._retry_wait(state, node, failures, error, delay, started)

        outcome = await attempt(
            call, options=step.options, name=node.key, accept=accept, wait=wait,
            prior_failures=record.attempts if record is not None else 0,
        )  # fmt: skip
        if outcome.ok:
            if isinstance(outcome.value, StepResponse) and outcome.value.skipped:
                await self._finish_step(state, node, StepStatus.SKIPPED, outcome, started)
                state.values[node.key] = None
                return True
            out_text, comp_text = encoded
            output = roundtrip(_output_of(outcome.value), out_text)
            write = StepWrite(
                seq=node.seq, name=node.key, status=StepStatus.COMPLETED,
                attempts=outcome.attempts, output=out_text, compensate_input=comp_text,
                started_at=started, ended_at=self.clock.now(), completed_order=state.next_order,
                events=tuple(StagedEvent(*event) for event in attempt_ctx[0].staged),
            )  # fmt: skip
            state.next_order += 1
            await self.store.checkpoint(state.run_id, self.identity.id, (write,), _NO_CHANGE,
                                        write.ended_at or started)  # fmt: skip
            state.record(write, output, loads(comp_text) if comp_text is not None else None)
            state.values[node.key] = output
            return True
        if step.options.skip_on_permanent_failure:
            await self._finish_step(state, node, StepStatus.SKIPPED, outcome, started)
            state.values[node.key] = None
            return True
        if step.options.continue_on_permanent_failure:
            await self._finish_step(state, node, StepStatus.FAILED, outcome, started)
            state.values[node.key] = None
            return True
        await self._finish_step(state, node, StepStatus.FAILED, outcome, started, trigger=True)
        return False

    async def _finish_step(
        self,
        state: RunState,
        node: StepNode,
        status: StepStatus,
        outcome: Attempted,
        started: Any,
        *,
        trigger: bool = False,
    ) -> None:
        """Checkpoint a step that did not complete (skipped or failed)."""
        comp_text = None
        if trigger and outcome.value is not None and node.step.compensation:
            try:
                comp_text = dumps(outcome.value, f"the compensate_input of step {node.key!r}")
            except Exception as exc:
                logger.warning("compensate_input_dropped", run_id=state.run_id, step=node.key,
                               error=str(exc))  # fmt: skip
        error = outcome.error
        error_text = dumps(error.to_dict(), "a step error") if error is not None else None
        now = self.clock.now()
        write = StepWrite(
            seq=node.seq, name=node.key, status=status, attempts=outcome.attempts,
            compensate_input=comp_text, error=error_text, started_at=started, ended_at=now,
        )  # fmt: skip
        update = _NO_CHANGE
        if trigger:
            if state.error is None:
                state.error = error
            update = RunUpdate(status=RunStatus.COMPENSATING, error=error_text)
        await self.store.checkpoint(state.run_id, self.identity.id, (write,), update, now)
        state.record(write, None, loads(comp_text), error)

    async def _retry_wait(
        self, state: RunState, node: StepNode, failures: int, error: StoredError, delay: float,
        started: Any,
    ) -> None:  # fmt: skip
        """Record a failed attempt, then wait; a long wait parks the run as ``sleeping``."""
        now = self.clock.now()
        write = StepWrite(
            seq=node.seq, name=node.key, status=StepStatus.RUNNING, attempts=failures,
            error=dumps(error.to_dict(), "a step error"), started_at=started,
        )  # fmt: skip
        parked = delay >= PARK_AFTER
        update = (
            RunUpdate(status=RunStatus.SLEEPING, available_at=now + timedelta(seconds=delay))
            if parked else _NO_CHANGE
        )  # fmt: skip
        await self.store.checkpoint(state.run_id, self.identity.id, (write,), update, now)
        logger.info("step_retry_scheduled", run_id=state.run_id, step=node.key,
                    failures=failures, delay_s=round(delay, 3), error=error.message)  # fmt: skip
        await self.clock.sleep(delay)
        if parked:
            await self.store.checkpoint(
                state.run_id, self.identity.id, (), RunUpdate(status=RunStatus.RUNNING),
                self.clock.now(),
            )  # fmt: skip

    async def _fail_run(self, state: RunState, error: StoredError) -> bool:
        """A non-step node failed (a transform, a bad reference): roll back from here."""
        state.error = error
        await self.store.checkpoint(
            state.run_id, self.identity.id, (),
            RunUpdate(status=RunStatus.COMPENSATING, error=dumps(error.to_dict(), "an error")),
            self.clock.now(),
        )  # fmt: skip
        return False

    async def _release(self, state: RunState) -> RunStatus:
        """Shutdown: hand the run back to the queue before its next step."""
        now = self.clock.now()
        await self.store.checkpoint(
            state.run_id, self.identity.id, (),
            RunUpdate(status=RunStatus.PENDING, available_at=now, release=True), now,
        )  # fmt: skip
        logger.info("run_released", run_id=state.run_id, reason="shutdown")
        return RunStatus.PENDING

    async def _complete(self, state: RunState) -> RunStatus:
        try:
            output = resolve(state.workflow.graph.output, state.values)
            text = dumps(output, f"the result of workflow {state.workflow.name!r}")
        except Exception as exc:
            await self._fail_run(state, StoredError.from_exception(exc, None))
            return await compensation.roll_back(self, state)
        now = self.clock.now()
        await self.store.checkpoint(
            state.run_id, self.identity.id, (),
            RunUpdate(
                status=RunStatus.COMPLETED,
                output=text,
                ended_at=now,
                release=True,
                publish_staged=True,
            ), now,
        )  # fmt: skip
        state.values["$output"] = roundtrip(output, text)
        return RunStatus.COMPLETED

    # -- results --------------------------------------------------------

    def result_of_state(self, state: RunState, status: RunStatus) -> WorkflowResult:
        output = state.values.get("$output") if status is RunStatus.COMPLETED else None
        return WorkflowResult(
            result=output,
            run_id=state.run_id,
            status=status,
            errors=_errors(list(state.records.values()), step_error(state.error)),
        )

    def result_of(self, record: RunRecord, steps: list[StepRecord]) -> WorkflowResult:
        return WorkflowResult(
            result=record.output if record.status is RunStatus.COMPLETED else None,
            run_id=record.id,
            status=record.status,
            errors=_errors(steps, record.error),
        )

    # -- hooks for steps (EngineHooks) ----------------------------------

    async def run_child(self, ctx: StepContext, workflow: Any, input: Any) -> tuple[str, Any]:
        result = await self.run_composition(
            workflow, ctx.container, input, f"{ctx.run_id}:{ctx.step}", parent_run_id=ctx.run_id
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
                child_run_id, (RunStatus.COMPLETED,), RunStatus.COMPENSATING, self.clock.now(),
                owner_id=self.identity.id, rollback_status=RunStatus.CANCELED,
            )  # fmt: skip
            if claimed is None:
                continue
            workflow = self.registry.get(record.workflow, record.version)
            await self.drive(workflow, ctx.container, claimed,
                             await self.store.load_steps(child_run_id))  # fmt: skip
            return


_NO_CHANGE = RunUpdate()


def pending_run(
    workflow: str,
    input: Any,
    *,
    version: str | None,
    kind: str,
    idempotency_key: str | None,
    now: datetime,
    delay: float = 0.0,
) -> NewRun:
    """A background run to insert: ``pending``, unowned, due after ``delay`` seconds."""
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


def _continues(node: StepNode) -> bool:
    options = node.step.options
    return options.continue_on_permanent_failure or options.skip_on_permanent_failure


def _conditions_hold(conditions: tuple[Any, ...], values: dict[str, Any]) -> bool:
    return all(c.predicate(resolve(c.values, values)) for c in conditions)


def _output_of(returned: Any) -> Any:
    return returned.output if isinstance(returned, StepResponse) else returned


def _errors(steps: list[StepRecord], run_error: StepError | None) -> list[StepError]:
    """The error that ended the run first, then every other step's error, in step order.

    A failed step keeps its error after its own compensation ran (it is then
    ``compensated``), so every failed parallel sibling is listed.
    """
    errors = [run_error] if run_error is not None else []
    for step in sorted(steps, key=lambda s: s.seq):
        if step.error is not None and step.error not in errors:
            errors.append(step.error)
    return errors
