"""Driving a composition workflow (``create_workflow``): its recorded graph, stage by stage.

Nodes run in the order the constructor recorded them; a stage made by
``parallelize`` runs its steps concurrently. On a resumed run every step with
a completed record is replayed from it (its function is not called), and
``transform``/``when`` nodes are computed again from the stored values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from runtime.engine import rollback
from runtime.engine.run import Compensator, RunState
from runtime.engine.step_runner import record_failure, run_step
from runtime.errors import NonDeterminismError, StoredError
from runtime.models import RunStatus, StepRecord, StepStatus
from runtime.sdk.composition import WorkflowDefinition
from runtime.sdk.graph import ComputeNode, Node, StepNode
from runtime.sdk.refs import INPUT, resolve
from runtime.sdk.steps import StepContext, call_step_fn
from runtime.store.base import RunUpdate
from runtime.usercode import failure, is_failure

if TYPE_CHECKING:
    from runtime.engine.executor import Engine


def prepare(state: RunState, workflow: WorkflowDefinition, input: Any) -> None:
    """Seed a run's state: its input value and the compensators of its steps."""
    state.values[INPUT] = input
    for node in workflow.graph.steps:
        fn = node.step.compensate_fn
        if fn is not None:
            options = node.step.options
            lets_through = (
                options.continue_on_permanent_failure or options.skip_on_permanent_failure
            )
            state.compensators[node.seq] = Compensator(fn, options, own=not lets_through)


async def forward(engine: Engine, state: RunState) -> RunStatus:
    """Run the graph from where the records end; then complete, or roll back."""
    workflow: WorkflowDefinition = state.workflow
    stages = workflow.graph.stages
    last = _last_step_stage(stages)
    for index, stage in enumerate(stages):
        if state.control is not None or (state.interruptible and engine.draining):
            return await engine.stop_here(state)
        if len(stage) == 1:
            finish = (
                _completion(engine, state, stage[0], stages[index + 1 :])
                if (index == last)
                else None
            )
            ok = await _node(
                engine, state, stage[0], may_park=state.interruptible, completion=finish
            )
            if state.finished:
                return RunStatus.COMPLETED
        else:
            ok = await _parallel(engine, state, stage)
        if not ok:
            return await rollback.roll_back(engine, state)
    if state.control is not None:  # a request that came with the last step's checkpoint
        return await engine.stop_here(state)
    try:
        output = resolve(workflow.graph.output, state.values)
    except BaseException as exc:  # sys.exit() in a function of the output fails the run
        if not is_failure(exc):
            raise
        await engine.fail_run(state, failure(exc, f"the output of workflow {workflow.name!r}"))
        return await rollback.roll_back(engine, state)
    return await engine.complete(state, output)


async def _parallel(engine: Engine, state: RunState, stage: tuple[Node, ...]) -> bool:
    outcomes: list[bool] = []

    async def one(node: Node) -> None:
        # Siblings wait out their retries in memory: parking one would cut off the others.
        outcomes.append(await _node(engine, state, node, may_park=False))

    try:
        async with anyio.create_task_group() as tg:
            for node in stage:
                tg.start_soon(one, node)
    except BaseExceptionGroup as group:
        # Surface the one error that matters (a lost lease, a park) unwrapped, so the
        # engine handles a sibling's as it would a single step's.
        raise _first_of(group) from group
    return all(outcomes)


def _first_of(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def _last_step_stage(stages: tuple[tuple[Node, ...], ...]) -> int | None:
    """The index of the last stage with a step, when it is a single step (else ``None``)."""
    for index in range(len(stages) - 1, -1, -1):
        stage = stages[index]
        if any(isinstance(node, StepNode) for node in stage):
            return index if len(stage) == 1 else None
    return None


def _completion(
    engine: Engine, state: RunState, node: Node, tail: tuple[tuple[Node, ...], ...]
) -> Callable[[Any], RunUpdate | None]:
    """How the last step's checkpoint completes the run: the rest is pure computation.

    Given that step's output, it computes the ``transform``/``when`` nodes after it and
    the workflow's result; if any of that fails it returns ``None``, and the run goes
    on the ordinary way (where the failure is recorded and rolled back).
    """

    def finish(output: Any) -> RunUpdate | None:
        if state.interruptible and engine.draining:
            return None
        values = {**state.values, node.key: output}
        try:
            for stage in tail:
                (compute,) = stage
                assert isinstance(compute, ComputeNode)
                _evaluate(compute, values)
            result = resolve(state.workflow.graph.output, values)
            update, value = engine.completion(state, result)
        except BaseException as exc:
            if not is_failure(exc):
                raise
            return None  # computed again on the ordinary way, which records the failure
        state.values.update(values)
        state.values["$output"] = value
        return update

    return finish


async def _node(
    engine: Engine,
    state: RunState,
    node: Node,
    *,
    may_park: bool,
    completion: Callable[[Any], RunUpdate | None] | None = None,
) -> bool:
    """Run one node; False when it failed for good (the run must roll back)."""
    if isinstance(node, ComputeNode):
        return await _compute(engine, state, node)
    record = state.records.get(node.seq)
    if record is not None:
        if record.name != node.key:
            # The code changed under a run in flight: the run fails with that reason (and
            # rolls back), as a durable workflow's does.
            mismatch = NonDeterminismError(state.run_id, node.seq, record.name, node.key)
            return await engine.fail_run(state, StoredError.from_exception(mismatch, node.key))
        if record.status is StepStatus.COMPLETED:
            state.values[node.key] = record.output
            return True
        if record.status in (StepStatus.SKIPPED, StepStatus.FAILED):
            state.values[node.key] = None
            options = node.step.options
            lets_through = (
                options.continue_on_permanent_failure or options.skip_on_permanent_failure
            )
            return record.status is StepStatus.SKIPPED or lets_through
    try:
        if not _conditions_hold(node.conditions, state.values):
            state.values[node.key] = None
            return True
        step_input = resolve(node.input, state.values)
    except BaseException as exc:  # a `when` condition or an input's function: user code
        if not is_failure(exc):
            raise
        what = f"the conditions or input of step {node.key!r}"
        return await engine.fail_run(state, failure(exc, what, node.key))
    return await _step(engine, state, node, step_input, record, may_park, completion)


async def _compute(engine: Engine, state: RunState, node: ComputeNode) -> bool:
    try:
        _evaluate(node, state.values)
    except BaseException as exc:  # a `transform` function or a `when` condition: user code
        if not is_failure(exc):
            raise
        return await engine.fail_run(state, failure(exc, node.key, node.key))
    return True


def _evaluate(node: ComputeNode, values: dict[str, Any]) -> None:
    """Compute a ``transform``/``when`` node into ``values`` (``None`` when skipped)."""
    if not _conditions_hold(node.conditions, values):
        values[node.key] = None
        return
    value = resolve(node.values, values)
    for fn in node.fns:
        value = fn(value)
    values[node.key] = value


async def _step(
    engine: Engine,
    state: RunState,
    node: StepNode,
    step_input: Any,
    record: StepRecord | None,
    may_park: bool,
    completion: Callable[[Any], RunUpdate | None] | None = None,
) -> bool:
    step = node.step

    def invoke(ctx: StepContext) -> Any:
        return call_step_fn(step.invoke, step_input, ctx)

    result = await run_step(
        engine,
        state,
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
        state.values[node.key] = result.output
        return True
    state.values[node.key] = None
    if step.options.skip_on_permanent_failure:
        await record_failure(engine, state, node.seq, node.key, result, StepStatus.SKIPPED)
        return True
    if step.options.continue_on_permanent_failure:
        await record_failure(engine, state, node.seq, node.key, result, StepStatus.FAILED)
        return True
    await record_failure(
        engine,
        state,
        node.seq,
        node.key,
        result,
        StepStatus.FAILED,
        trigger=True,
        compensable=bool(step.compensation),
    )
    return False


def _conditions_hold(conditions: tuple[Any, ...], values: dict[str, Any]) -> bool:
    return all(c.predicate(resolve(c.values, values)) for c in conditions)
