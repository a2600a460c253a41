"""A workflow definition of either authoring style: the type the engine and registry take."""

from __future__ import annotations

from typing import Any, TypeAlias

from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.durable import DurableWorkflow

WorkflowDefinition: TypeAlias = CompositionWorkflow | DurableWorkflow
"""A composition workflow (``create_workflow``) or a durable one (``@workflow``).

Each carries its :class:`~runtime.models.RunKind` as ``kind``; code that treats the two
differently dispatches with ``match`` on the class.
"""

DEFINITION_TYPES = (CompositionWorkflow, DurableWorkflow)
"""The classes of :data:`WorkflowDefinition`, for ``isinstance`` checks on user input."""


def stored_input(workflow: WorkflowDefinition, input: Any) -> Any:
    """A run's input as it is stored: validated against a durable workflow's ``input``
    schema and in its JSON form; a composition workflow's as given.

    Raises:
        InputValidationError: the input does not match the schema (no run exists yet).
    """
    match workflow:
        case DurableWorkflow():
            return workflow.dump_input(workflow.validate_input(input))
        case CompositionWorkflow():
            return input
