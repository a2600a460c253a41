"""Driving a composition workflow (``create_workflow``): its recorded graph, stage by stage.

Nodes run in the order the constructor recorded them; a stage made by
``parallelize`` runs its steps concurrently. On a resumed run every step with
a completed record is replayed from it (its function is not called), and
``transform``/``when`` nodes are computed again from the stored values.

The driver returns the status the run is left in; ``compensating`` means the
run must roll back, which the executor does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from runtime.engine.run import Compensator, Completion, Run
from runtime.engine.step_runner import record_failure, run_step
from runtime.errors import NonDeterminismError, as_record
from runtime.models import RunStatus, StepRecord, StepStatus
from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.graph import ComputeNode, Node, StepNode
from runtime.sdk.refs import INPUT, resolve
from runtime.sdk.steps import StepContext, call_step_fn
from runtime.usercode import failure, is_failure

Stages = tuple[tuple[Node, ...], ...]


class GraphDriver:
    """Walks one run of a composition workflow; ``values`` holds what its nodes produced."""

    def __init__(self, run: Run, workflow: CompositionWorkflow) -> None:
        self.run = run
        self.workflow = workflow
        self.values: dict[str, Any] = {INPUT: run.input}
        for node in workflow.graph.steps:
            fn = node.step.compensate_fn
            if fn is not None:
                options = node.step.options
                lets_through = (
                    options.continue_on_permanent_failure or options.skip_on_permanent_failure
                )
                run.compensators[node.seq] = Compensator(fn, options, own=not lets_through)

    async def forward(self) -> RunStatus:
        """Run the graph from where the records end; then complete (or stop, or fail)."""
        run, graph = self.run, self.workflow.graph
        stages = graph.stages
        last = _last_step_stage(stages)
        for index, stage in enumerate(stages):
            if run.should_stop():
                return await run.stop_here()
            if len(stage) == 1:
                tail = stages[index + 1 :]
                finish = self._completion(stage[0], tail) if index == last else None
                ok = await self._node(stage[0], may_park=run.interruptible, completion=finish)
                if run.completed:
                    return RunStatus.COMPLETED
            else:
                ok = await self._parallel(stage)
            if not ok:
                return RunStatus.COMPENSATING
        if run.control is not None:  # a request that came with the last step's checkpoint
            return await run.stop_here()
        try:
            output = resolve(graph.output, self.values)
        except BaseException as exc:  # sys.exit() in a function of the output fails the run
            if not is_failure(exc):
                raise
            return await run.fail(failure(exc, f"the output of workflow {self.workflow.name!r}"))
        return await run.complete(output)

    async def _parallel(self, stage: tuple[Node, ...]) -> bool:
        outcomes: list[bool] = []

        async def one(node: Node) -> None:
            # Siblings wait out their retries in memory: parking one would cut off the others.
            outcomes.append(await self._node(node, may_park=False))

        try:
            async with anyio.create_task_group() as tg:
                for node in stage:
                    tg.start_soon(one, node)
        except BaseExceptionGroup as group:
            # Surface the one error that matters (a lost lease, a park) unwrapped, so the
            # engine handles a sibling's as it would a single step's.
            raise _first_of(group) from group
        return all(outcomes)

    def _completion(self, node: Node, tail: Stages) -> Callable[[Any], Completion | None]:
        """How the last step's checkpoint completes the run: the rest is pure computation.

        Given that step's output, it computes the ``transform``/``when`` nodes after it and
        the workflow's result; if any of that fails it returns ``None``, and the run goes
        on the ordinary way (where the failure is recorded and rolled back).
        """
        run = self.run

        def finish(output: Any) -> Completion | None:
            if run.should_stop():
                return None
            values = {**self.values, node.key: output}
            try:
                for stage in tail:
                    (compute,) = stage
                    assert isinstance(compute, ComputeNode)
                    _evaluate(compute, values)
                completion = run.completion(resolve(self.workflow.graph.output, values))
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                return None  # computed again on the ordinary way, which records the failure
            self.values.update(values)
            return completion

        return finish

    async def _node(
        self,
        node: Node,
        *,
        may_park: bool,
        completion: Callable[[Any], Completion | None] | None = None,
    ) -> bool:
        """Run one node; False when it failed for good (the run must roll back)."""
        run, values = self.run, self.values
        if isinstance(node, ComputeNode):
            return await self._compute(node)
        record = run.records.get(node.seq)
        if record is not None:
            if record.name != node.key:
                # The code changed under a run in flight: the run fails with that reason (and
                # rolls back), as a durable workflow's does.
                mismatch = NonDeterminismError(run.id, node.seq, record.name, node.key)
                await run.fail(as_record(mismatch, node.key))
                return False
            if record.status is StepStatus.COMPLETED:
                values[node.key] = record.output
                return True
            if record.status in (StepStatus.SKIPPED, StepStatus.FAILED):
                values[node.key] = None
                options = node.step.options
                lets_through = (
                    options.continue_on_permanent_failure or options.skip_on_permanent_failure
                )
                return record.status is StepStatus.SKIPPED or lets_through
        try:
            if not _conditions_hold(node.conditions, values):
                values[node.key] = None
                return True
            step_input = resolve(node.input, values)
        except BaseException as exc:  # a `when` condition or an input's function: user code
            if not is_failure(exc):
                raise
            what = f"the conditions or input of step {node.key!r}"
            await run.fail(failure(exc, what, node.key))
            return False
        return await self._step(node, step_input, record, may_park, completion)

    async def _compute(self, node: ComputeNode) -> bool:
        try:
            _evaluate(node, self.values)
        except BaseException as exc:  # a `transform` function or a `when` condition: user code
            if not is_failure(exc):
                raise
            await self.run.fail(failure(exc, node.key, node.key))
            return False
        return True

    async def _step(
        self,
        node: StepNode,
        step_input: Any,
        record: StepRecord | None,
        may_park: bool,
        completion: Callable[[Any], Completion | None] | None,
    ) -> bool:
        run, step = self.run, node.step

        def invoke(ctx: StepContext) -> Any:
            return call_step_fn(step.invoke, step_input, ctx)

        result = await run_step(
            run,
            seq=node.seq,
            name=node.key,
            invoke=invoke,
            options=step.options,
            compensable=bool(step.compensation),
            record=record,
            may_park=may_park,
            completion=completion,
        )
        if result.ok:
            self.values[node.key] = result.output
            return True
        self.values[node.key] = None
        options = step.options
        if options.skip_on_permanent_failure or options.continue_on_permanent_failure:
            status = StepStatus.SKIPPED if options.skip_on_permanent_failure else StepStatus.FAILED
            await record_failure(run, node.seq, node.key, result, status)
            return True
        await record_failure(
            run,
            node.seq,
            node.key,
            result,
            StepStatus.FAILED,
            trigger=True,
            compensable=bool(step.compensation),
        )
        return False


def _first_of(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def _last_step_stage(stages: Stages) -> int | None:
    """The index of the last stage with a step, when it is a single step (else ``None``)."""
    for index in range(len(stages) - 1, -1, -1):
        stage = stages[index]
        if any(isinstance(node, StepNode) for node in stage):
            return index if len(stage) == 1 else None
    return None


def _evaluate(node: ComputeNode, values: dict[str, Any]) -> None:
    """Compute a ``transform``/``when`` node into ``values`` (``None`` when skipped)."""
    if not _conditions_hold(node.conditions, values):
        values[node.key] = None
        return
    value = resolve(node.values, values)
    for fn in node.fns:
        value = fn(value)
    values[node.key] = value


def _conditions_hold(conditions: tuple[Any, ...], values: dict[str, Any]) -> bool:
    return all(c.predicate(resolve(c.values, values)) for c in conditions)
