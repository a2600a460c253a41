"""``Runtime``: the one place that wires store, engine, worker, bus and scheduler together.

Everything long-lived runs in one task group that ``Runtime`` owns: the
heartbeat, the worker (run queue and recovery), the event dispatcher, the
scheduler, the pruner (retention), and a watcher that notices commits made by other processes (a
``Client`` in a web app, another worker) so the loops wake at once instead of
waiting for their next scan.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import structlog

from runtime.bus import EventBus
from runtime.clock import Clock, SystemClock
from runtime.config import (
    DEFAULT_RETENTION,
    ProjectConfig,
    load_project_config,
    parse_database_url,
    unknown_variables,
)
from runtime.container import Container
from runtime.cron import timezone as cron_timezone
from runtime.discovery import SetupHook, discover, load_setup
from runtime.engine.executor import Engine
from runtime.engine.leases import LEASE_TTL, WorkerIdentity, keep_alive
from runtime.engine.worker import Worker
from runtime.errors import ConfigError, DatabaseReplacedError, DefinitionError, StoreError
from runtime.limits import (
    MAX_CONCURRENCY,
    MAX_SHUTDOWN_GRACE,
    count,
    duration,
    folder_arg,
    listed,
    shown,
    text,
)
from runtime.log import ensure_configured
from runtime.models import RunRecord
from runtime.pruner import Pruner, Retention
from runtime.registry import Registry
from runtime.runs import RunHandle, RunsApi, run_options, wait_timeout
from runtime.scheduling.entries import job_workflow, schedules_for
from runtime.scheduling.scheduler import Scheduler
from runtime.sdk.definitions import DEFINITION_TYPES, WorkflowDefinition
from runtime.sdk.running import EXECUTOR_KEY, WorkflowResult
from runtime.sdk.specs import Job, Subscriber
from runtime.store import open_store
from runtime.store.base import Store

logger = structlog.get_logger("runtime")

WATCH_INTERVAL = 0.02
"""Seconds between checks for commits by other processes (one cheap PRAGMA read)."""

FILE_CHECK_INTERVAL = 1.0
"""Seconds between checks that the database file is still the one this process opened."""


class Workflows(RunsApi):
    """The runtime's workflow API, registered in the container as ``workflows``.

    ``wf(container).run()`` executes through it; ``run`` starts background runs;
    ``get_run``/``list_runs`` read them; ``pause``/``resume``/``cancel``/``retry``
    manage them.
    """

    def __init__(self, engine: Engine, registry: Registry, worker: Worker | None) -> None:
        self._engine = engine
        self._registry = registry
        self._worker = worker
        self._ended = anyio.Event()

    async def run_inline(
        self,
        workflow: WorkflowDefinition,
        container: Container,
        input: Any,
        transaction_id: str | None,
    ) -> WorkflowResult:
        return await self._engine.run_inline(workflow, container, input, transaction_id)

    async def run(
        self,
        workflow: str | WorkflowDefinition,
        input: Any = None,
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
        delay: float | timedelta = 0.0,
    ) -> RunHandle:
        """Enqueue a run and return at once; the worker executes it.

        With an ``idempotency_key`` already used for this workflow, the handle of the
        run it started is returned and nothing new is enqueued.
        """
        definition: WorkflowDefinition
        if isinstance(workflow, DEFINITION_TYPES):
            seconds = run_options(workflow.name, version, idempotency_key, delay)
            definition = workflow
        else:
            seconds = run_options(workflow, version, idempotency_key, delay)
            definition = self._registry.resolve(workflow, version)
        record, _ = await self._engine.enqueue(
            definition, input, idempotency_key=idempotency_key, delay=seconds
        )
        if self._worker is not None:
            self._worker.poke()
        return RunHandle(record.id, self)

    def names(self) -> list[str]:
        """The workflows this runtime knows."""
        return self._registry.names()

    async def _open_store(self) -> Store:
        return self._engine.store

    def _now(self) -> datetime:
        return self._engine.clock.now()

    def _changed(self) -> None:
        if self._worker is not None:
            self._worker.poke()

    def notify(self) -> None:
        """Something may have ended (a run here, or a commit elsewhere): wake waiters."""
        self._ended.set()
        self._ended = anyio.Event()

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until a run is terminal and return it (woken by commits, not a slow poll)."""
        timeout = wait_timeout(timeout)
        with anyio.fail_after(timeout):
            while True:
                ended = self._ended
                record = await self.get_run(run_id, steps=False)
                if record.status.terminal:
                    return record
                with anyio.move_on_after(0.25):
                    await ended.wait()


class Runtime:
    """The runtime: a store, the saga executor, the worker, the event bus, the scheduler.

    ::

        async with Runtime(database="sqlite:///app.db", workflows=[hello]) as rt:
            result = await hello(rt.container).run(input={"name": "Ada"})

    Args:
        database: ``sqlite:///relative.db`` (to ``base_dir``) or ``sqlite:////abs.db``.
        workflows: definitions to know from the start, so their interrupted runs resume.
        subscribers: subscribers whose events this process delivers.
        jobs: scheduled jobs this process fires.
        container: services for steps to resolve; a new one if omitted.
        clock: time source (tests inject one).
        base_dir: where relative database paths start; the working directory by default.
        timezone: default timezone of cron schedules.
        concurrency: runs the worker drives at once.
        shutdown_grace: seconds running steps get to finish on :meth:`serve`'s shutdown.
        background: run the worker, dispatcher and scheduler in this process; off for
            one-shot tools (``runtime run --here``) that only drive their own run.
        interval: seconds between scans when nothing wakes the loops.
        retention, failed_retention: how long ended history is kept (seconds, a
            ``timedelta`` or ``"30d"``; 0 keeps it forever): see ``docs/retention.md``.
            With either on, a background runtime prunes every few minutes.
    """

    def __init__(
        self,
        database: str = "sqlite:///runtime.db",
        *,
        workflows: Iterable[WorkflowDefinition] = (),
        subscribers: Iterable[Subscriber] = (),
        jobs: Iterable[Job] = (),
        container: Container | None = None,
        clock: Clock | None = None,
        base_dir: Path | str | None = None,
        timezone: str = "UTC",
        concurrency: int = 10,
        shutdown_grace: float = 30.0,
        background: bool = True,
        interval: float = 1.0,
        retention: float | timedelta | str = DEFAULT_RETENTION,
        failed_retention: float | timedelta | str = 0.0,
    ) -> None:
        self.database = text(database, "Runtime(database=...)", error=ConfigError)
        if container is not None and not isinstance(container, Container):
            raise ConfigError(f"Runtime(container=...) must be a Container, got {shown(container)}")
        self.container = container if container is not None else Container()
        self.clock = clock or SystemClock()
        self.registry = Registry()
        a_workflow = "a workflow (create_workflow or @workflow)"
        kinds = DEFINITION_TYPES
        workflows = listed(
            workflows, "Runtime(workflows=...)", kinds, a_workflow, error=ConfigError
        )
        self.subscribers = listed(
            subscribers,
            "Runtime(subscribers=...)",
            (Subscriber,),
            "a Subscriber",
            error=ConfigError,
        )
        self.jobs = listed(jobs, "Runtime(jobs=...)", (Job,), "a Job", error=ConfigError)
        for workflow in workflows:
            self.registry.register(workflow)
        for job in self.jobs:
            runs_as = job_workflow(job)
            if runs_as.name in self.registry.names():
                raise DefinitionError(
                    f"job {job.name!r} ({job.source}) runs as the workflow {runs_as.name!r}, "
                    "which is also the name of a workflow given to the runtime; rename one"
                )
            self.registry.register(runs_as)
        # Of several versions of a workflow, the newest declares its schedules.
        self.schedules = schedules_for(self.jobs, self.registry.newest(), timezone)
        self.identity = WorkerIdentity.current()
        try:
            cron_timezone(timezone)
        except DefinitionError as exc:
            raise ConfigError(f"Runtime(timezone=...): {exc}") from None
        self.concurrency = count(
            concurrency, "concurrency", minimum=1, maximum=MAX_CONCURRENCY, error=ConfigError
        )
        self.shutdown_grace = duration(
            shutdown_grace, "shutdown_grace", maximum=MAX_SHUTDOWN_GRACE, error=ConfigError
        )
        self._interval = duration(interval, "interval", positive=True, error=ConfigError)
        self.retention = Retention.of(retention, failed_retention, error=ConfigError)
        self._base_dir = folder_arg(base_dir, "Runtime(base_dir=...)", error=ConfigError)
        parse_database_url(database, self._base_dir)  # a bad URL fails here, not on entry
        self._background = background
        self._stack: AsyncExitStack | None = None
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._worker: Worker | None = None
        self._bus: EventBus | None = None
        self._scheduler: Scheduler | None = None
        self.pruner: Pruner | None = None
        """The retention loop, once started (a background runtime with retention on)."""
        self._setup: SetupHook | None = None
        self.config: ProjectConfig | None = None

    @classmethod
    def from_project(cls, root: Path | str = ".", **options: Any) -> Runtime:
        """A runtime for a project: ``runtime.toml``, its folders and its setup hook.

        Raises:
            ConfigError: a bad setting or a broken module (all of them, each naming its file).
        """
        config = load_project_config(Path(root))
        for variable, message in unknown_variables().items():
            logger.warning("unknown_environment_variable", variable=variable, problem=message)
        found = discover(config)
        found.raise_problems()
        settings: dict[str, Any] = {
            "base_dir": config.root,
            "timezone": config.timezone,
            "concurrency": config.concurrency,
            "shutdown_grace": config.shutdown_grace,
            "retention": config.retention,
            "failed_retention": config.failed_retention,
        }
        settings.update(options)
        database = settings.pop("database", None) or config.database
        runtime = cls(
            database,
            workflows=found.workflows,
            subscribers=found.subscribers,
            jobs=found.jobs,
            **settings,
        )
        runtime._setup = load_setup(config)
        runtime.config = config
        return runtime

    # -- the parts, once started ----------------------------------------------

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
    def worker(self) -> Worker:
        """The run queue consumer (and recovery)."""
        if self._worker is None:
            raise ConfigError("the runtime is not started, or runs with background=False")
        return self._worker

    @property
    def active_runs(self) -> list[str]:
        """Ids of the runs this process is driving now (the worker's and ``run()`` callers')."""
        return self._engine.active_runs if self._engine is not None else []

    @property
    def bus(self) -> EventBus:
        """The event bus."""
        if self._bus is None:
            raise ConfigError("the runtime is not started: use it as 'async with Runtime(...)'")
        return self._bus

    @property
    def scheduler(self) -> Scheduler:
        """The cron scheduler."""
        if self._scheduler is None:
            raise ConfigError("the runtime is not started, or runs with background=False")
        return self._scheduler

    async def emit(
        self,
        name: str,
        data: Any = None,
        *,
        metadata: dict[str, Any] | None = None,
        delay: float | timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Emit an event durably (see :meth:`runtime.bus.EventBus.emit`); returns its id."""
        return await self.bus.emit(
            name, data, metadata=metadata, delay=delay, idempotency_key=idempotency_key
        )

    # -- life cycle ---------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        ensure_configured()
        async with AsyncExitStack() as stack:
            store = await open_store(self.database, self._base_dir)
            stack.push_async_callback(store.close)
            self._store = store

            def run_ended(run_id: str) -> None:
                workflows.notify()
                bus.poke()  # the run may have published events (staged, or job.failed)

            engine = Engine(store, self.registry, self.clock, self.identity, on_run_ended=run_ended)
            self._engine = engine
            worker = Worker(engine, self.container, self.concurrency, self._interval)
            workflows = Workflows(engine, self.registry, worker if self._background else None)
            bus = EventBus(
                store,
                self.clock,
                self.identity.id,
                self.subscribers,
                self.container,
                interval=self._interval,
            )
            self._bus = bus

            self.container.register(EXECUTOR_KEY, workflows)
            self.container.register("event_bus", bus)
            if "logger" not in self.container:
                self.container.register("logger", logger)
            if self._setup is not None:
                await self._setup(self.container)
            await store.upsert_worker(self.identity.row(self.clock.now()))
            stack.push_async_callback(self._release)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            await tg.start(keep_alive, store, self.identity, self.clock)
            await tg.start(self._guard_file)
            if self._background:
                await bus.register()
                self._worker = worker
                self.registry.on_change(worker.poke)
                scheduler = Scheduler(
                    store,
                    self.clock,
                    self.schedules,
                    on_started=worker.poke,
                    worker_id=self.identity.id,
                    worker_ttl=LEASE_TTL,
                )
                self._scheduler = scheduler
                await tg.start(worker.run)
                await tg.start(bus.run)
                await tg.start(scheduler.run)
                await tg.start(self._watch, workflows)
                if self.retention.enabled:
                    self.pruner = Pruner(store, self.clock, self.retention)
                    await tg.start(self.pruner.run)
            # Counted as `runtime workflows list` counts: each version, jobs' workflows not.
            defined = sum(len(self.registry.versions(n)) for n in self.registry.names())
            defined -= len(self.jobs)
            logger.info(
                "runtime_started",
                worker=self.identity.id,
                database=self.database,
                workflows=defined,
                subscribers=len(self.subscribers),
                jobs=len(self.jobs),
            )
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._store = None

    async def drain(self, grace: float | None = None) -> bool:
        """Stop taking work and let what runs finish its current step; True if all did.

        Runs driven by the worker stop before their next step and go back to the queue;
        handlers and steps already running get ``grace`` seconds to finish.
        """
        grace = self.shutdown_grace if grace is None else grace
        if self._engine is not None:
            self._engine.drain()
        for part in (self._worker, self._bus):
            if part is not None:
                part.stop_accepting()
        for stoppable in (self._scheduler, self.pruner):
            if stoppable is not None:
                stoppable.stop()
        with anyio.move_on_after(grace):
            while self._busy():  # noqa: ASYNC110 - two counters, bounded by the grace period
                await anyio.sleep(0.01)
            return True
        logger.warning("shutdown_grace_expired", grace_s=grace, still_running=self._busy())
        return False

    def _busy(self) -> int:
        deliveries = self._bus.in_flight if self._bus is not None else 0
        return len(self.active_runs) + deliveries

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully (``runtime start``)."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with self:
                task_status.started()
                async for received in signals:
                    logger.info("shutdown_requested", signal=signal.Signals(received).name)
                    break
                await self.drain()
        logger.info("runtime_stopped", worker=self.identity.id)

    async def _release(self) -> None:
        """Forget this worker; the runs it still holds go back to the queue."""
        with anyio.CancelScope(shield=True):
            await self.store.remove_workers([self.identity.id], self.clock.now())

    async def _guard_file(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Stop the runtime when its database file is deleted or replaced under it.

        Its connections would go on writing to the old file, which no other process
        (a client, the CLI, the next start) can see: every commit from then on is lost.
        """
        store = self.store
        task_status.started()
        while True:
            await self.clock.sleep(FILE_CHECK_INTERVAL)
            try:
                # One stat() of the file, on the loop: microseconds on a local disk, and the
                # file is local (SQLite's WAL mode does not work over a network file system).
                await store.check_file()
            except DatabaseReplacedError as exc:
                logger.error("database_file_lost", path=exc.path, error=str(exc))
                raise

    async def _watch(
        self, workflows: Workflows, *, task_status: Any = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Wake the loops when another process commits (a Client's emit or run)."""
        store = self.store
        last = await store.change_token()
        task_status.started()
        while True:
            # Real time, not the injected clock: this polls the database file itself.
            await anyio.sleep(WATCH_INTERVAL)
            try:
                token = await store.change_token()
            except StoreError:
                logger.exception("watch_failed")
                continue
            if token != last:
                last = token
                self.bus.poke()
                self.worker.poke()
                workflows.notify()
