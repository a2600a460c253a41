"""The registry: the workflows a runtime knows, looked up by (name, version)."""

from __future__ import annotations

from collections.abc import Callable

from runtime.errors import DefinitionError, UnknownWorkflowError
from runtime.sdk.definitions import WorkflowDefinition
from runtime.sdk.durable import version_key


class Registry:
    """Workflow definitions by name and version.

    A runtime knows a workflow once it is handed over, discovered, or run
    through the runtime's container; recovery resumes runs of known workflows
    only. Registering a second, different definition under a (name, version)
    already taken is an error: two workflows cannot share a name.

    Args:
        on_register: called (synchronously) whenever a workflow becomes known, so a
            worker can pick up the runs that waited for its code at once.
    """

    def __init__(self, *, on_register: Callable[[], None] | None = None) -> None:
        self._by_name: dict[str, dict[str | None, WorkflowDefinition]] = {}
        self._on_register = on_register

    def register(self, workflow: WorkflowDefinition) -> None:
        """Make ``workflow`` known."""
        versions = self._by_name.setdefault(workflow.name, {})
        existing = versions.get(workflow.version)
        if existing is workflow:
            return
        if existing is not None:
            label = workflow.name + (f" {workflow.version}" if workflow.version else "")
            raise DefinitionError(f"two different workflows are named {label!r}")
        versions[workflow.version] = workflow
        if self._on_register is not None:
            self._on_register()

    def ensure(self, workflow: WorkflowDefinition) -> None:
        """Register ``workflow`` unless that very definition is already known."""
        if self._by_name.get(workflow.name, {}).get(workflow.version) is not workflow:
            self.register(workflow)

    def get(self, name: str, version: str | None = None) -> WorkflowDefinition:
        """The definition of ``name`` at ``version``."""
        try:
            return self._by_name[name][version]
        except KeyError:
            versions = sorted(self._by_name.get(name, {}), key=lambda v: v or "")
            error = UnknownWorkflowError(name, version, versions=versions, workflows=self.names())
            raise error from None

    def resolve(self, name: str, version: str | None = None) -> WorkflowDefinition:
        """``version`` of ``name``, or its newest version when ``version`` is ``None``.

        Newest: versions compare in natural order (``v10`` > ``v2``), and an
        unversioned definition is older than any versioned one.
        """
        if version is not None:
            return self.get(name, version)
        versions = self._by_name.get(name)
        if not versions:
            return self.get(name, None)
        return versions[max(versions, key=version_key)]

    def newest(self) -> list[WorkflowDefinition]:
        """The newest version of every known workflow (the ones whose schedules fire)."""
        return [self.resolve(name) for name in self.names()]

    def versions(self, name: str) -> list[str | None]:
        """The known versions of ``name``, oldest first."""
        return sorted(self._by_name.get(name, {}), key=version_key)

    def names(self) -> list[str]:
        """Every known workflow name, sorted."""
        return sorted(self._by_name)
