"""The recorded shape of a composition workflow: nodes grouped into stages.

A constructor function runs once inside a :class:`Builder`; every step call,
``transform`` and ``when`` adds a node. Nodes run stage by stage in the order
they were recorded (which is a topological order, because a node can only
refer to nodes recorded before it); ``parallelize`` puts several step nodes in
one stage so they run concurrently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from runtime.errors import DefinitionError, DuplicateStepError
from runtime.sdk.refs import INPUT, Ref, collect_sources, path_of, source_of
from runtime.sdk.steps import RECORDER, StepDefinition


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """``when(values, predicate)``: nodes under it run only if it holds."""

    values: Any
    predicate: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class StepNode:
    """A step call inside a workflow."""

    key: str
    seq: int
    step: StepDefinition
    input: Any
    conditions: tuple[Condition, ...]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ComputeNode:
    """A pure computation (``transform``, or the value of a ``when`` block)."""

    key: str
    values: Any
    fns: tuple[Callable[[Any], Any], ...]
    conditions: tuple[Condition, ...]


Node = StepNode | ComputeNode


@dataclasses.dataclass(frozen=True, slots=True)
class Graph:
    """Stages of nodes, and the template of the workflow's output."""

    stages: tuple[tuple[Node, ...], ...]
    output: Any

    @property
    def steps(self) -> tuple[StepNode, ...]:
        """Every step node, in sequence order."""
        return tuple(n for stage in self.stages for n in stage if isinstance(n, StepNode))


def current_builder() -> Builder | None:
    """The builder of the workflow constructor running now, if any."""
    recorder = RECORDER.get()
    return recorder if isinstance(recorder, Builder) else None


class Builder:
    """Records nodes while a constructor function runs (the steps' ``StepRecorder``)."""

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.stages: list[list[Node]] = []
        self.names: set[str] = set()
        self.conditions: tuple[Condition, ...] = ()
        self._steps = 0
        self._computes = 0

    def __enter__(self) -> Builder:
        self._token = RECORDER.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        RECORDER.reset(self._token)

    def add_step(self, step: StepDefinition, input: Any) -> Ref:
        if step.name in self.names:
            raise DuplicateStepError(
                f"workflow {self.workflow!r} uses the step name {step.name!r} twice; give the "
                f"second use its own name with step.with_options(name='...')"
            )
        self._check_sources(input, f"the input of step {step.name!r}")
        self.names.add(step.name)
        self._steps += 1
        node = StepNode(
            key=step.name,
            seq=self._steps,
            step=step,
            input=input,
            conditions=self.conditions,
        )
        self.stages.append([node])
        return Ref(node.key)

    def add_compute(self, values: Any, fns: tuple[Callable[[Any], Any], ...], label: str) -> Ref:
        self._check_sources(values, f"the values of {label}")
        self._computes += 1
        node = ComputeNode(
            key=f"{label}#{self._computes}", values=values, fns=fns, conditions=self.conditions
        )
        self.stages.append([node])
        return Ref(node.key)

    def group(self, refs: tuple[Any, ...]) -> tuple[Ref, ...]:
        """Merge the stages of the steps behind ``refs`` into one parallel stage."""
        if len(refs) < 2:
            raise DefinitionError("parallelize(...) needs at least two steps")
        keys = []
        for ref in refs:
            if not isinstance(ref, Ref) or path_of(ref) or source_of(ref) == INPUT:
                raise DefinitionError(
                    "parallelize(...) takes the results of step calls, e.g. "
                    f"parallelize(step_a(x), step_b(y)); got {ref!r}"
                )
            keys.append(source_of(ref))
        tail = self.stages[-len(keys) :]
        tail_keys = [stage[0].key for stage in tail if len(stage) == 1]
        # Any order: the arguments are the steps just called, whatever order they are listed in.
        if (
            sorted(tail_keys) != sorted(keys)
            or len(set(keys)) != len(keys)
            or not all(isinstance(stage[0], StepNode) for stage in tail)
        ):
            raise DefinitionError(
                "parallelize(...) must directly wrap the step calls it runs together, e.g. "
                f"parallelize(step_a(x), step_b(y)); {keys} are not the steps just called"
            )
        members = set(keys)
        for stage in tail:
            node = stage[0]
            assert isinstance(node, StepNode)
            clash = collect_sources(node.input) & members
            if clash:
                raise DefinitionError(
                    f"parallelize(...): step {node.key!r} uses the output of {sorted(clash)}, "
                    "which runs at the same time; call it after the parallel group instead"
                )
        del self.stages[-len(keys) :]
        self.stages.append([stage[0] for stage in tail])
        return tuple(Ref(key) for key in keys)

    def build(self, output: Any) -> Graph:
        self._check_sources(output, "the workflow's response")
        return Graph(stages=tuple(tuple(stage) for stage in self.stages), output=output)

    def _check_sources(self, template: Any, where: str) -> None:
        known = {node.key for stage in self.stages for node in stage} | {INPUT}
        unknown = collect_sources(template) - known
        if unknown:
            raise DefinitionError(
                f"workflow {self.workflow!r}: {where} refers to {sorted(unknown)}, which belong "
                "to another workflow"
            )
