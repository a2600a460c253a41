"""Discovery: import a project's ``workflows/`` modules and collect their workflows.

The project root goes on ``sys.path`` so user code can write
``from workflows.x import y``. Files starting with ``_`` are helpers and are
not imported by discovery itself. Every problem is collected, each naming its
file, so ``runtime check`` can print all of them at once.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

from runtime.config import ProjectConfig
from runtime.errors import ConfigError
from runtime.sdk.workflows import WorkflowDefinition


@dataclasses.dataclass(slots=True)
class Discovered:
    """What a project holds, and what is wrong with it."""

    workflows: list[WorkflowDefinition] = dataclasses.field(default_factory=list)
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)

    def raise_problems(self) -> None:
        """Raise one :class:`ConfigError` listing every problem, if there is any."""
        if self.problems:
            raise ConfigError("the project has problems:\n  " + "\n  ".join(self.problems))


def discover(config: ProjectConfig) -> Discovered:
    """Import ``workflows/`` under the project root and collect workflow definitions."""
    found = Discovered()
    root = str(config.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    folder = config.root / "workflows"
    if not folder.is_dir():
        return found
    try:
        _bind_package("workflows", folder)
    except Exception as exc:
        found.problems.append(
            f"{folder / '__init__.py'}: import failed: {type(exc).__name__}: {exc}"
        )
        return found
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _import(f"workflows.{path.stem}", path, found)
        if module is None:
            continue
        for value in vars(module).values():
            if isinstance(value, WorkflowDefinition):
                _add(found, value, path)
    return found


def _bind_package(name: str, folder: Path) -> None:
    """Make ``name`` the package at ``folder``, whatever else is on ``sys.path``.

    A folder without ``__init__.py`` is a namespace package, and Python prefers a
    regular package of the same name anywhere on ``sys.path`` over it; binding the
    package explicitly makes ``workflows.x`` mean this project's file.
    """
    existing = sys.modules.get(name)
    if existing is not None and str(folder) in list(getattr(existing, "__path__", [])):
        return
    init = folder / "__init__.py"
    spec = (
        importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
        if init.exists()
        else importlib.machinery.ModuleSpec(name, None, is_package=True)
    )
    assert spec is not None
    if spec.submodule_search_locations is None or not init.exists():
        spec.submodule_search_locations = [str(folder)]
    module = importlib.util.module_from_spec(spec)
    for key in [k for k in sys.modules if k == name or k.startswith(f"{name}.")]:
        del sys.modules[key]
    sys.modules[name] = module
    if spec.loader is not None:
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise


def _import(name: str, path: Path, found: Discovered) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        where = _user_frame(exc, path)
        found.problems.append(f"{path}: import failed: {type(exc).__name__}: {exc}{where}")
        return None


def _user_frame(exc: BaseException, path: Path) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename == str(path):
            return f" (line {frame.lineno})"
    return ""


def _add(found: Discovered, workflow: WorkflowDefinition, path: Path) -> None:
    key = f"{workflow.name}@{workflow.version}"
    existing = found.sources.get(key)
    if existing is None:
        found.sources[key] = str(path)
        found.workflows.append(workflow)
    elif all(w is not workflow for w in found.workflows):
        found.problems.append(
            f"{path}: workflow {workflow.name!r} is also defined in {existing}; names are unique"
        )


def load_setup(config: ProjectConfig) -> Any:
    """The project's setup hook (``module:function``), imported; ``None`` if not set."""
    if config.setup is None:
        return None
    module_name, _, attr = config.setup.partition(":")
    root = str(config.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"{config.source}: setup {config.setup!r}: cannot import {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    hook = getattr(module, attr, None)
    if not callable(hook):
        raise ConfigError(f"{config.source}: setup {config.setup!r}: no function {attr!r} there")
    return hook
