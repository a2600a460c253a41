"""``Runtime``: the one place that wires store, engine, worker, bus and scheduler together.

Everything long-lived runs in one task group that ``Runtime`` owns: the
heartbeat, the worker (run queue and recovery), the event dispatcher, the
scheduler, the pruner (retention), and a watcher that notices commits made by other processes (a
``Client`` in a web app, another worker) so the loops wake at once instead of
waiting for their next scan.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog

from runtime.bus import EventBus
from runtime.clock import AlignedClock, Clock
from runtime.config import (
    DEFAULT_RETENTION,
    HttpAddress,
    ProjectConfig,
    check_exposure,
    load_project_config,
    parse_database_url,
    parse_http_address,
    redact,
    unknown_variables,
)
from runtime.config import http_token as _http_token
from runtime.container import Container
from runtime.cron import timezone as cron_timezone
from runtime.discovery import SetupHook, discover, load_setup
from runtime.engine.executor import Engine
from runtime.engine.leases import LEASE_TTL, WorkerIdentity, keep_alive
from runtime.engine.worker import Worker
from runtime.errors import ConfigError, DefinitionError
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
from runtime.pruner import Pruner, Retention
from runtime.registry import Registry
from runtime.scheduling.entries import job_workflow, schedules_for
from runtime.scheduling.scheduler import Scheduler
from runtime.sdk.definitions import DEFINITION_TYPES, WorkflowDefinition
from runtime.sdk.running import WORKFLOWS_KEY
from runtime.sdk.specs import Job, Subscriber
from runtime.store import align_clock, open_store
from runtime.store.base import Store
from runtime.telemetry import Telemetry
from runtime.watch import guard_file, watch_commits
from runtime.web.app import build_app, store_source
from runtime.web.console import Console
from runtime.web.project import Project
from runtime.web.server import HttpServer
from runtime.workflows_api import Workflows

logger = structlog.get_logger("runtime")

SERVICE_PREFIX = "runtime."
"""The runtime's own container names start with it (``WORKFLOWS_KEY`` among them)."""

BUS_KEY = "runtime.event_bus"
"""The container name of a started runtime's :class:`EventBus`."""

LOGGER_KEY = "runtime.logger"
"""The container name of the runtime's structlog logger."""


class Drainable(Protocol):
    """A part that can stop taking new work without waiting (see :meth:`Runtime.drain`)."""

    def drain(self) -> None:
        """Take no new work; what runs goes on."""


@dataclasses.dataclass(frozen=True, slots=True)
class Parts:
    """What a started runtime runs: built on entry, dropped on exit.

    Attributes:
        store: the open store.
        engine: drives runs (the worker's and ``wf(container).run()`` callers').
        workflows: the workflow API (``rt.workflows``).
        bus: the event bus (emitting always; delivering in a background runtime).
        worker: the run queue consumer; ``None`` unless the runtime runs in the background.
        scheduler: fires cron schedules; ``None`` unless in the background.
        pruner: the retention loop; ``None`` unless in the background with retention on.
        http: the HTTP API and dashboard; ``None`` unless ``http`` is set.
    """

    store: Store
    engine: Engine
    workflows: Workflows
    bus: EventBus
    worker: Worker | None
    scheduler: Scheduler | None
    pruner: Pruner | None
    http: HttpServer | None = None

    def drainable(self) -> list[Drainable]:
        """Every part that takes work, in the order a shutdown stops their intake."""
        parts: list[Drainable | None] = [
            self.http,
            self.engine,
            self.worker,
            self.bus,
            self.scheduler,
            self.pruner,
        ]
        return [part for part in parts if part is not None]


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
        setup: a project's setup hook, called with the container on every entry,
            before any loop starts (:meth:`from_project` loads it from ``runtime.toml``).
        config: the project's settings, kept as :attr:`config` (:meth:`from_project`).
        http: ``"HOST:PORT"`` to serve the HTTP API and the dashboard
            from this runtime's task group (``docs/http.md``); port 0 takes a free one
            (:attr:`http_port`). Off by default.
        http_token: the token every request then needs; without one, ``http`` must be
            a loopback address.
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
        setup: SetupHook | None = None,
        config: ProjectConfig | None = None,
        http: str | None = None,
        http_token: str | None = None,
    ) -> None:
        self._stack: AsyncExitStack | None = None
        self._parts: Parts | None = None
        """The started parts; set on entry, cleared on exit."""
        self.database = text(database, "Runtime(database=...)", error=ConfigError)
        if container is not None and not isinstance(container, Container):
            raise ConfigError(f"Runtime(container=...) must be a Container, got {shown(container)}")
        self.container = container if container is not None else Container()
        self.clock: Clock = clock or AlignedClock()
        self.registry = Registry(on_register=self._workflow_known)
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
        self._setup = setup
        self.http_token = _http_token(http_token, "Runtime(http_token=...)")
        self.http: HttpAddress | None = None
        if http is not None:
            self.http = parse_http_address(http, "Runtime(http=...)")
            check_exposure(self.http, self.http_token, "Runtime(http=...)")
        self.config = config
        """The project's settings, when the runtime was made from a project."""
        self.telemetry = Telemetry()
        """What this runtime's engine and scheduler counted (steps ended, firings and
        their lag), across its entries; ``GET /metrics`` serves it (``docs/metrics.md``)."""

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
            "http": config.http,
            "http_token": config.http_token,
        }
        settings.update(options)
        if settings["http"] is not None:
            # Refused naming the file (or variable) the address came from.
            where = "--http" if "http" in options else f"{config.source}: 'http'"
            address = parse_http_address(settings["http"], where)
            check_exposure(address, settings["http_token"], where)
        database = settings.pop("database", None) or config.database
        return cls(
            database,
            workflows=found.workflows,
            subscribers=found.subscribers,
            jobs=found.jobs,
            setup=load_setup(config),
            config=config,
            **settings,
        )

    # -- the parts, once started ----------------------------------------------

    def _started(self, background: bool = False) -> Parts:
        parts = self._parts
        if parts is None or (background and parts.worker is None):
            detail = ", or runs with background=False" if background else ""
            raise ConfigError(
                f"the runtime is not started{detail}: use it as 'async with Runtime(...)'"
            )
        return parts

    @property
    def http_port(self) -> int | None:
        """The port the HTTP API listens on, once started with ``http``."""
        parts = self._parts
        return parts.http.port if parts is not None and parts.http is not None else None

    @property
    def store(self) -> Store:
        """The open store (only inside ``async with``)."""
        return self._started().store

    @property
    def workflows(self) -> Workflows:
        """Run and read workflows (only inside ``async with``)."""
        return self._started().workflows

    @property
    def worker(self) -> Worker:
        """The run queue consumer (and recovery)."""
        worker = self._started(background=True).worker
        assert worker is not None  # _started checked it
        return worker

    @property
    def active_runs(self) -> list[str]:
        """Ids of the runs this process is driving now (the worker's and ``run()`` callers')."""
        return self._parts.engine.active_runs if self._parts is not None else []

    @property
    def bus(self) -> EventBus:
        """The event bus (only inside ``async with``)."""
        return self._started().bus

    @property
    def scheduler(self) -> Scheduler:
        """The cron scheduler."""
        scheduler = self._started(background=True).scheduler
        assert scheduler is not None  # a background runtime always has one
        return scheduler

    @property
    def pruner(self) -> Pruner | None:
        """The retention loop (``None`` unless in the background with retention on)."""
        return self._started().pruner

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
        if self._stack is not None:
            raise ConfigError("the runtime is already started; enter it once at a time")
        # Claimed before the first await: a second task entering meanwhile is refused too.
        self._stack = AsyncExitStack()
        try:
            return await self._enter()
        except BaseException:
            self._stack = None
            raise

    async def _enter(self) -> Runtime:
        async with AsyncExitStack() as stack:
            store = await open_store(self.database, self._base_dir)
            stack.push_async_callback(store.close)
            if isinstance(self.clock, AlignedClock):
                await align_clock(self.clock, store)
            parts = self._build_parts(store)
            self._parts = parts
            # Runs last but one on exit: after the loops ended, before the store closes.
            stack.callback(self._forget_parts)
            self._register_services(parts, stack)
            if self._setup is not None:
                await self._setup(self.container)
            await store.upsert_worker(self.identity.row(self.clock.now()))
            stack.push_async_callback(self._release, store)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            await tg.start(keep_alive, store, self.identity, self.clock)
            await tg.start(guard_file, store, self.clock)
            if parts.worker is not None and parts.scheduler is not None:
                await parts.bus.register()
                await tg.start(parts.worker.run)
                await tg.start(parts.bus.run)
                await tg.start(parts.scheduler.run)
                await tg.start(watch_commits, store, self._committed_elsewhere)
                if parts.pruner is not None:
                    await tg.start(parts.pruner.run)
            if parts.http is not None:
                await tg.start(parts.http.run)
            # Counted as `runtime workflows list` counts: each version, jobs' workflows not.
            defined = sum(len(self.registry.versions(n)) for n in self.registry.names())
            defined -= len(self.jobs)
            logger.info(
                "runtime_started",
                worker=self.identity.id,
                database=redact(self.database),
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

    def _build_parts(self, store: Store) -> Parts:
        """The parts of this runtime on ``store``, built (nothing runs yet)."""
        engine = Engine(
            store,
            self.registry,
            self.clock,
            self.identity,
            on_run_ended=self._run_ended,
            telemetry=self.telemetry,
        )
        bus = EventBus(
            store,
            self.clock,
            self.identity.id,
            self.subscribers,
            self.container,
            interval=self._interval,
            worker_ttl=LEASE_TTL,
        )
        http = self._http_server(store)
        if not self._background:
            workflows = Workflows(engine, self.registry, None)
            return Parts(store, engine, workflows, bus, None, None, None, http)
        worker = Worker(engine, self.container, self.concurrency, self._interval)
        scheduler = Scheduler(
            store,
            self.clock,
            self.schedules,
            on_started=worker.poke,
            worker_id=self.identity.id,
            worker_ttl=LEASE_TTL,
            telemetry=self.telemetry,
        )
        pruner = Pruner(store, self.clock, self.retention) if self.retention.enabled else None
        workflows = Workflows(engine, self.registry, worker)
        return Parts(store, engine, workflows, bus, worker, scheduler, pruner, http)

    def _http_server(self, store: Store) -> HttpServer | None:
        """The HTTP server of ``http``, over this runtime's store and definitions."""
        if self.http is None:
            return None
        project = Project(self.registry, self.schedules, self.subscribers, self.jobs)
        console = Console(store_source(store), project, self.clock)
        app = build_app(console, token=self.http_token, telemetry=self.telemetry)
        return HttpServer(app, self.http, grace=self.shutdown_grace)

    def _forget_parts(self) -> None:
        self._parts = None

    def _register_services(self, parts: Parts, stack: AsyncExitStack) -> None:
        """Put the runtime's services in the container, and take them out again on exit.

        Each goes under ``runtime.<name>``, which is the runtime's own (``wf(container)
        .run()`` finds the runtime under ``runtime.workflows``), and under the plain
        name too unless the application registered that name itself: the
        application's service wins, and its steps reach ours under ``runtime.<name>``.
        """
        services = {WORKFLOWS_KEY: parts.workflows, BUS_KEY: parts.bus, LOGGER_KEY: logger}
        for own, service in services.items():
            plain = own.removeprefix(SERVICE_PREFIX)
            keys = [own] if plain in self.container else [own, plain]
            for key in keys:
                self.container.register(key, service)
                stack.callback(self.container.unregister, key, service)

    def _run_ended(self, run_id: str) -> None:
        """The engine stopped driving a run: wake waiters, and the dispatcher (the run
        may have published events, staged or ``job.failed``)."""
        parts = self._parts
        if parts is not None:
            parts.workflows.notify()
            parts.bus.poke()

    def _workflow_known(self) -> None:
        """A workflow was registered: runs that waited for its code may go now."""
        parts = self._parts
        if parts is not None and parts.worker is not None:
            parts.worker.poke()

    def _committed_elsewhere(self) -> None:
        """Another process committed (a Client's emit or run): every loop looks again."""
        parts = self._parts
        if parts is not None:
            parts.bus.poke()
            if parts.worker is not None:
                parts.worker.poke()
            parts.workflows.notify()

    async def drain(self, grace: float | None = None) -> bool:
        """Stop taking work and let what runs finish its current step; True if all did.

        Every part stops its intake (:meth:`Parts.drainable`): runs driven by the worker
        stop before their next step and go back to the queue; handlers and steps
        already running get ``grace`` seconds to finish.
        """
        grace = self.shutdown_grace if grace is None else grace
        parts = self._parts
        if parts is None:
            return True
        for part in parts.drainable():
            part.drain()
        with anyio.move_on_after(grace):
            while self._busy(parts):  # noqa: ASYNC110 - two counters, bounded by the grace period
                await anyio.sleep(0.01)
            return True
        logger.warning("shutdown_grace_expired", grace_s=grace, still_running=self._busy(parts))
        return False

    @staticmethod
    def _busy(parts: Parts) -> int:
        return len(parts.engine.active_runs) + parts.bus.in_flight

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

    async def _release(self, store: Store) -> None:
        """Forget this worker; the runs it still holds go back to the queue."""
        with anyio.CancelScope(shield=True):
            await store.remove_workers([self.identity.id], self.clock.now())
