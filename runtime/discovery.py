"""Discovery: import a project's ``workflows/``, ``subscribers/`` and ``jobs/`` modules.

The project root goes on ``sys.path`` so user code can write
``from workflows.x import y``. Files starting with ``_`` are helpers and are
not imported by discovery itself (nor are hidden ones, starting with ``.``), and
files that are not Python (a README, an editor's backup) are left alone; a folder
is a problem, since the workflows in it would be silently skipped. Every problem
is collected, each naming its file and what is wrong, so ``runtime check`` can
print all of them at once and ``runtime start`` refuses to start with one message
listing them.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from runtime.config import ProjectConfig
from runtime.container import Container
from runtime.errors import ConfigError
from runtime.sdk.definitions import DEFINITION_TYPES, WorkflowDefinition
from runtime.sdk.specs import Job, JobConfig, Subscriber, SubscriberConfig
from runtime.usercode import is_failure

Kind = Literal["workflows", "subscribers", "jobs"]

# What a module's own code raises while it is imported is a problem of that file (a
# stray ``sys.exit()``, ``raise KeyboardInterrupt`` or ``input()`` at module level must
# not end the process); a real Ctrl-C during the import still ends it (``is_failure``).


@dataclasses.dataclass(slots=True)
class Discovered:
    """What a project holds, and what is wrong with it.

    Attributes:
        workflows: workflow definitions found in ``workflows/``.
        subscribers: one per module of ``subscribers/``.
        jobs: one per module of ``jobs/``.
        sources: ``"workflow:<name>@<version>"``, ``"subscriber:<id>"``,
            ``"job:<name>"`` -> the file that defines it.
        problems: one line per problem, each naming its file.
    """

    workflows: list[WorkflowDefinition] = dataclasses.field(default_factory=list)
    subscribers: list[Subscriber] = dataclasses.field(default_factory=list)
    jobs: list[Job] = dataclasses.field(default_factory=list)
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)

    def raise_problems(self) -> None:
        """Raise one :class:`ConfigError` listing every problem, if there is any."""
        if self.problems:
            raise ConfigError("the project has problems:\n  " + "\n  ".join(self.problems))

    def source_of(self, key: str) -> str:
        """The file that defines ``key`` (see :attr:`sources`)."""
        return self.sources.get(key, "(code)")


def discover(config: ProjectConfig) -> Discovered:
    """Import the project's folders and collect what they define."""
    found = Discovered()
    root = str(config.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    for kind in ("workflows", "subscribers", "jobs"):
        for path, module in _modules(config, kind, found):
            if kind == "workflows":
                _collect_workflows(found, module, path)
            elif kind == "subscribers":
                _collect_subscriber(found, module, path)
            else:
                _collect_job(found, module, path)
    return found


def _modules(config: ProjectConfig, kind: Kind, found: Discovered) -> list[tuple[Path, Any]]:
    folder = config.folder(kind)
    if not folder.is_dir():
        if folder.exists():
            found.problems.append(f"{folder}: not a folder; {kind} go in .py files in a folder")
        return []
    package = getattr(config, f"{kind}_dir")
    try:
        _bind_package(package, folder)
    except BaseException as exc:
        if not is_failure(exc):
            raise
        found.problems.append(f"{folder / '__init__.py'}: import failed: {_describe(exc)}")
        return []
    modules = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir():
            # A folder may hold workflows that would never be found: say so.
            found.problems.append(f"{path}: {_not_a_module(path)}")
            continue
        if path.suffix != ".py":
            continue  # not code: a README, an editor's backup (x.py~, #x.py#), data
        try:
            modules.append((path, importlib.import_module(f"{package}.{path.stem}")))
        except BaseException as exc:
            if not is_failure(exc):
                raise
            found.problems.append(f"{path}: import failed: {_describe(exc)}{_line(exc, path)}")
    return modules


def _not_a_module(path: Path) -> str:
    return (
        f"a folder, so discovery would skip it: only the .py files directly in "
        f"{path.parent.name}/ are imported (start the name with '_' to keep it there as helpers)"
    )


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


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _line(exc: BaseException, path: Path) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == str(path):
            return f" (line {frame.lineno})"
    return ""


def _collect_workflows(found: Discovered, module: ModuleType, path: Path) -> None:
    for value in vars(module).values():
        if not isinstance(value, DEFINITION_TYPES):
            continue
        key = f"workflow:{value.name}@{value.version}"
        existing = found.sources.get(key)
        if existing is None:
            found.sources[key] = str(path)
            found.workflows.append(value)
        elif all(w is not value for w in found.workflows):
            found.problems.append(
                f"{path}: workflow {value.name!r} is also defined in {existing}; "
                "workflow names are unique"
            )


def _handler(module: ModuleType, path: Path, found: Discovered, takes: str) -> Any:
    handler = getattr(module, "handler", None)
    if handler is None:
        found.problems.append(f"{path}: no 'handler' defined; export `async def handler({takes})`")
        return None
    if not inspect.iscoroutinefunction(handler):
        found.problems.append(
            f"{path}: 'handler' must be an async function `async def handler({takes})`, "
            f"got {handler!r}"
        )
        return None
    required = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(required) != 1:
        found.problems.append(
            f"{path}: 'handler' must take exactly one argument ({takes}), it takes {len(required)}"
        )
        return None
    return handler


def _config(module: ModuleType, path: Path, found: Discovered, expected: type) -> Any:
    config = getattr(module, "config", None)
    if config is None:
        found.problems.append(
            f"{path}: no 'config' defined; export `config = {expected.__name__}(...)`"
        )
        return None
    if not isinstance(config, expected):
        found.problems.append(
            f"{path}: 'config' must be a {expected.__name__}, got {type(config).__name__}"
        )
        return None
    return config


def _collect_subscriber(found: Discovered, module: ModuleType, path: Path) -> None:
    handler = _handler(module, path, found, "args: SubscriberArgs")
    config = _config(module, path, found, SubscriberConfig)
    if handler is None or config is None:
        return
    subscriber_id = config.subscriber_id or path.stem
    key = f"subscriber:{subscriber_id}"
    if key in found.sources:
        found.problems.append(
            f"{path}: subscriber id {subscriber_id!r} is also used by {found.sources[key]}; "
            "give one of them another subscriber_id"
        )
        return
    found.sources[key] = str(path)
    found.subscribers.append(Subscriber(subscriber_id, handler, config, str(path)))


def _collect_job(found: Discovered, module: ModuleType, path: Path) -> None:
    handler = _handler(module, path, found, "container: Container")
    config = _config(module, path, found, JobConfig)
    if handler is None or config is None:
        return
    key = f"job:{config.name}"
    if key in found.sources:
        found.problems.append(
            f"{path}: job name {config.name!r} is also used by {found.sources[key]}; "
            "job names are unique"
        )
        return
    # A job's firings are runs of the workflow job-<name>: a workflow of that name
    # would be a second definition of it (workflows are collected first).
    workflow = f"job-{config.name}"
    clash = [source for k, source in found.sources.items() if k.startswith(f"workflow:{workflow}@")]
    if clash:
        found.problems.append(
            f"{path}: job {config.name!r} runs as the workflow {workflow!r}, which "
            f"{clash[0]} also defines; rename the job or the workflow"
        )
        return
    found.sources[key] = str(path)
    found.jobs.append(Job(handler, config, str(path)))


@dataclasses.dataclass(frozen=True, slots=True)
class SetupHook:
    """The project's ``setup`` hook, imported and checked; a failure names the file.

    Attributes:
        fn: the function, called with the container (it may be async).
        spec: ``module:function`` as ``runtime.toml`` says it.
        source: the settings file that names it.
    """

    fn: Callable[[Container], Any]
    spec: str
    source: str

    async def __call__(self, container: Container) -> None:
        """Call the hook with ``container``.

        Raises:
            ConfigError: the hook raised (its type, message and line).
        """
        try:
            returned = self.fn(container)
            if inspect.isawaitable(returned):
                await returned
        except BaseException as exc:  # a KeyboardInterrupt or sys.exit() in it included
            if not is_failure(exc):
                raise
            raise ConfigError(
                f"{self.source}: setup {self.spec!r} raised {_describe(exc)}{_origin(exc)}"
            ) from exc


def load_setup(config: ProjectConfig) -> SetupHook | None:
    """The project's setup hook (``module:function``), imported; ``None`` if not set.

    Raises:
        ConfigError: the module does not import, the function is missing or does not
            take one argument (the container).
    """
    if config.setup is None:
        return None
    module_name, _, attr = config.setup.partition(":")
    root = str(config.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    where = f"{config.source}: setup {config.setup!r}"
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        if not is_failure(exc):
            raise
        raise ConfigError(
            f"{where}: cannot import {module_name!r}: {_describe(exc)}{_origin(exc)}"
        ) from exc
    hook = getattr(module, attr, None)
    if not callable(hook):
        raise ConfigError(f"{where}: no function {attr!r} there")
    try:
        signature: inspect.Signature | None = inspect.signature(hook)
    except (TypeError, ValueError):
        signature = None  # a builtin or a C callable: trust it
    if signature is not None:
        try:
            signature.bind(None)
        except TypeError:
            raise ConfigError(
                f"{where}: {attr}{signature} must take one argument, the container"
                f"{_origin_of(hook)}"
            ) from None
    return SetupHook(hook, config.setup, config.source)


def _origin(exc: BaseException) -> str:
    """`` (file line N)`` for the innermost frame of the traceback outside runtime itself."""
    package = str(Path(__file__).resolve().parent)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not frame.filename.startswith(package) and not frame.filename.startswith("<"):
            return f" ({frame.filename} line {frame.lineno})"
    return ""


def _origin_of(fn: Any) -> str:
    try:
        return f" ({inspect.getsourcefile(fn)} line {inspect.getsourcelines(fn)[1]})"
    except (OSError, TypeError):
        return ""
