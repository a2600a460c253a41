"""``Runtime``: the one place that wires store, engine and loops together."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import structlog

from runtime.clock import Clock, SystemClock
from runtime.config import load_project_config, parse_database_url
from runtime.container import Container
from runtime.discovery import discover, load_setup
from runtime.engine.executor import Engine
from runtime.engine.leases import HEARTBEAT_INTERVAL, WorkerIdentity
from runtime.engine.recovery import Recovery
from runtime.errors import ConfigError
from runtime.log import ensure_configured
from runtime.models import RunRecord, RunStatus
from runtime.registry import Registry
from runtime.sdk.workflows import EXECUTOR_KEY, WorkflowDefinition, WorkflowResult
from runtime.store.base import RunPage, Store
from runtime.store.sqlite import SqliteStore

logger = structlog.get_logger("runtime")


async def open_store(database: str, base_dir: Path | None = None) -> Store:
    """Open the store a database URL names (creating or migrating its schema)."""
    url = parse_database_url(database, base_dir)
    if url.scheme == "sqlite":
        return await SqliteStore.open(
            url.path, synchronous=url.options.get("synchronous", "normal")
        )
    raise ConfigError(f"no store for {database!r}")


class Workflows:
    """The runtime's workflow API, registered in the container as ``workflows``.

    It is what ``wf(container).run()`` uses to execute a composition workflow,
    and where runs are read.
    """

    def __init__(self, engine: Engine, registry: Registry) -> None:
        self._engine = engine
        self._registry = registry

    async def run_composition(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        input: Any,
        transaction_id: str | None,
    ) -> WorkflowResult:
        return await self._engine.run_composition(workflow, container, input, transaction_id)

    async def get_run(self, run_id: str) -> RunRecord:
        """A run with its steps, attempts, errors and timings."""
        return await self._engine.store.get_run(run_id)

    async def list_runs(
        self,
        *,
        status: Sequence[RunStatus | str] | None = None,
        workflow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first; pass ``next_cursor`` back for the next page."""
        statuses = [RunStatus(s) for s in status] if status else None
        return await self._engine.store.list_runs(
            status=statuses, workflow=workflow, limit=limit, cursor=cursor
        )

    def names(self) -> list[str]:
        """The workflows this runtime knows."""
        return self._registry.names()


class Runtime:
    """An embedded runtime: a store, the saga executor, and recovery.

    ::

        async with Runtime(database="sqlite:///app.db", workflows=[hello]) as rt:
            result = await hello(rt.container).run(input={"name": "Ada"})

    Args:
        database: ``sqlite:///relative.db`` (to ``base_dir``) or ``sqlite:////abs.db``.
        workflows: definitions to know from the start, so their interrupted runs resume.
        container: services for steps to resolve; a new one if omitted.
        clock: time source (tests inject one).
        base_dir: where relative database paths start; the working directory by default.
        recovery_interval: seconds between scans for runs to take over.
        recovery: resume interrupted runs of known workflows in this process; off for
            one-shot tools (``runtime run``) that should only drive their own run.
    """

    def __init__(
        self,
        database: str = "sqlite:///runtime.db",
        *,
        workflows: Iterable[WorkflowDefinition] = (),
        container: Container | None = None,
        clock: Clock | None = None,
        base_dir: Path | str | None = None,
        recovery_interval: float = 1.0,
        recovery: bool = True,
    ) -> None:
        self.database = database
        self.container = container if container is not None else Container()
        self.clock = clock or SystemClock()
        self.registry = Registry()
        for workflow in workflows:
            self.registry.register(workflow)
        self.identity = WorkerIdentity.current()
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._recovery_interval = recovery_interval
        self._recover = recovery
        self._stack: AsyncExitStack | None = None
        self._store: Store | None = None
        self._recovery: Recovery | None = None
        self._setup: Any = None

    @classmethod
    def from_project(cls, root: Path | str = ".", **options: Any) -> Runtime:
        """A runtime for a project: ``runtime.toml``, ``workflows/`` and the setup hook.

        Raises:
            ConfigError: a bad setting or a broken module, naming the file.
        """
        config = load_project_config(Path(root))
        found = discover(config)
        found.raise_problems()
        container = options.pop("container", None) or Container()
        hook = load_setup(config)
        runtime = cls(
            config.database,
            workflows=found.workflows,
            container=container,
            base_dir=config.root,
            **options,
        )
        runtime._setup = hook
        return runtime

    @property
    def store(self) -> Store:
        """The open store (only inside ``async with``)."""
        if self._store is None:
            raise ConfigError("the runtime is not started: use it as 'async with Runtime(...)'")
        return self._store

    @property
    def workflows(self) -> Workflows:
        """Run and read workflows."""
        api: Workflows = self.container.resolve(EXECUTOR_KEY)
        return api

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            raise ConfigError("the runtime is not started")
        return self._recovery

    async def __aenter__(self) -> Runtime:
        ensure_configured()
        async with AsyncExitStack() as stack:
            store = await open_store(self.database, self._base_dir)
            stack.push_async_callback(store.close)
            self._store = store
            engine = Engine(store, self.registry, self.clock, self.identity)
            self.container.register(EXECUTOR_KEY, Workflows(engine, self.registry))
            if "logger" not in self.container:
                self.container.register("logger", logger)
            if self._setup is not None:
                returned = self._setup(self.container)
                if inspect.isawaitable(returned):
                    await returned
            await store.upsert_worker(self.identity.row(self.clock.now()))
            stack.push_async_callback(self._release)
            recovery = Recovery(engine, self.container, self._recovery_interval)
            self._recovery = recovery
            self.registry.on_change(recovery.poke)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            await tg.start(self._heartbeat)
            if self._recover:
                await tg.start(recovery.run)
            logger.debug("runtime_started", worker=self.identity.id, database=self.database)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._store = None

    async def _release(self) -> None:
        """Forget this worker; the runs it still holds go back to the queue."""
        with anyio.CancelScope(shield=True):
            await self.store.remove_workers([self.identity.id], self.clock.now())

    async def _heartbeat(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.clock.sleep(HEARTBEAT_INTERVAL)
            await self.store.upsert_worker(self.identity.row(self.clock.now()))
