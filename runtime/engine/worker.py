"""The worker: drives the runs that are due and that nobody live holds.

One loop serves both the queue and recovery. It takes (with a compare-and-set
claim) due ``pending`` and ``sleeping`` runs, and ``running`` or
``compensating`` runs whose owner is dead, up to its concurrency limit, and
drives each in its task group. It scans at start, whenever it is poked (a run
was enqueued in this process, another process committed, a workflow became
known, a run ended and freed a slot) and at least every ``interval`` seconds.
Every few seconds it also forgets the workers of this host whose process is
gone, which releases their runs at once: a process restarted after a
``kill -9`` does not wait out its own dead lease.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from runtime.engine.leases import LEASE_TTL, dead_local_workers
from runtime.errors import LeaseLostError, StoreError, UnknownWorkflowError, as_record
from runtime.models import RunKind, RunRecord, StepError
from runtime.retry import backoff
from runtime.sdk.definitions import WorkflowDefinition

if TYPE_CHECKING:
    from runtime.container import Container
    from runtime.engine.executor import Engine

logger = structlog.get_logger("runtime.engine")

DEFER_CAP = 60.0
"""The longest wait between two tries of a run whose code is missing."""

REAP_INTERVAL = 5.0
"""Seconds between checks for dead workers on this host (also done at start)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """What a worker did since it was created, and what it does now.

    Attributes:
        resumed: runs it drove to an end (or to a stop: paused, sleeping, parked).
        in_flight: runs it is driving now.
        concurrency: runs it drives at once, at most.
    """

    resumed: int
    in_flight: int
    concurrency: int


class Worker:
    """The run queue consumer (and recovery) of one runtime.

    Args:
        engine: drives the runs.
        container: what steps resolve services from.
        concurrency: runs driven at once, at most.
        interval: seconds between scans when nothing pokes the worker.
    """

    def __init__(
        self, engine: Engine, container: Container, concurrency: int = 10, interval: float = 1.0
    ) -> None:
        self.engine = engine
        self.container = container
        self.concurrency = concurrency
        self.interval = interval
        self.resumed = 0
        self._in_flight: set[str] = set()
        self._wake = anyio.Event()
        self._draining = False
        self._last_reap = float("-inf")
        self._deferred: dict[str, tuple[int, datetime]] = {}

    def poke(self) -> None:
        """Scan now rather than at the next interval."""
        self._wake.set()

    def drain(self) -> None:
        """Take no new runs (shutdown); runs being driven go on. Non-blocking."""
        self._draining = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Runs this worker is driving now."""
        return len(self._in_flight)

    def statistics(self) -> WorkerStatistics:
        """Counters for operators: runs driven to an end, runs in flight, the limit."""
        return WorkerStatistics(
            resumed=self.resumed, in_flight=self.in_flight, concurrency=self.concurrency
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Scan until cancelled; ``started`` once the first scan launched its runs."""
        async with anyio.create_task_group() as tg:
            await self.scan(tg)
            task_status.started()
            while True:
                try:
                    timeout = await self._until_due()
                except StoreError:
                    timeout = self.interval
                with anyio.move_on_after(timeout):
                    await self._wake.wait()
                self._wake = anyio.Event()
                if not self._draining:
                    try:
                        await self.scan(tg)
                    except StoreError:
                        # The database refused us (locked past the busy timeout, say):
                        # the worker goes on and scans again at its next wake-up.
                        logger.exception("worker_scan_failed", retry_in=self.interval)

    async def _until_due(self) -> float:
        """Seconds to wait: until the next delayed or sleeping run is due, at most ``interval``."""
        if len(self._in_flight) >= self.concurrency or self._draining:
            return self.interval
        due = await self.engine.store.next_run_due(self.engine.registry.names())
        if due is None:
            return self.interval
        return min(self.interval, max((due - self.engine.clock.now()).total_seconds(), 0.0))

    async def scan(self, tg: TaskGroup) -> int:
        """Release dead local workers' runs, then start driving what is due; how many started."""
        engine = self.engine
        store, now = engine.store, engine.clock.now()
        if time.monotonic() - self._last_reap >= REAP_INTERVAL:
            self._last_reap = time.monotonic()
            dead = dead_local_workers(await store.list_workers(), engine.identity)
            if dead:
                released = await store.remove_workers(dead, now)
                logger.info("dead_workers_released", workers=dead, runs=released)
            # Runs of workflows nobody here knows (a client's typo, code not deployed yet)
            # say so on the run, instead of waiting without a word.
            for record in await store.unclaimed_unknown(engine.registry.names(), now, 20):
                try:
                    engine.registry.resolve(record.workflow, record.version)
                except UnknownWorkflowError as exc:
                    await self._wait_for_code(record, exc)
        room = self.concurrency - len(self._in_flight)
        if room <= 0 or self._draining:
            return 0
        runs = await store.recoverable_runs(
            engine.registry.names(), now, now - timedelta(seconds=LEASE_TTL), room + 10
        )
        started = 0
        for record in runs:
            if started >= room:
                break
            if record.id in self._in_flight or record.id in engine.active_runs:
                continue
            if self._deferred.get(record.id, (0, now))[1] > now:
                continue
            try:
                workflow = (
                    engine.registry.resolve(record.workflow, record.version)
                    if record.kind is RunKind.UNRESOLVED
                    else engine.registry.get(record.workflow, record.version)
                )
            except UnknownWorkflowError as exc:
                await self._wait_for_code(record, exc)
                continue
            self._deferred.pop(record.id, None)
            self._in_flight.add(record.id)
            tg.start_soon(self._drive, workflow, record)
            started += 1
        return started

    async def _defer(self, record: RunRecord, error: StepError, owner: str | None) -> datetime:
        """Put a run this worker cannot drive now back, with the reason on the run.

        It is tried again with backoff (capped at a minute), by this worker or another.
        """
        engine = self.engine
        failures = self._deferred.get(record.id, (0, engine.clock.now()))[0] + 1
        due = engine.clock.now() + timedelta(seconds=backoff(failures, 1.0, DEFER_CAP))
        self._deferred[record.id] = (failures, due)
        await engine.store.defer_run(record.id, owner, error.model_dump_json(), due)
        return due

    async def _wait_for_code(self, record: RunRecord, exc: UnknownWorkflowError) -> None:
        """A run whose code (or version) is not here waits; it is never run on other code."""
        message = f"{exc}; the run waits for this code to be deployed and then continues"
        error = StepError(step=None, type="UnknownWorkflowError", message=message)
        due = await self._defer(record, error, record.owner_id)
        logger.warning(
            "run_waits_for_code",
            run_id=record.id,
            workflow=record.workflow,
            version=record.version,
            retry_at=due.isoformat(),
        )

    async def _drive(self, workflow: WorkflowDefinition, record: RunRecord) -> None:
        log = logger.bind(run_id=record.id, workflow=record.workflow)
        try:
            result = await self.engine.resume(workflow, self.container, record, interruptible=True)
        except LeaseLostError:
            log.warning("run_lease_lost")
            return
        except Exception as exc:
            # One run's trouble (a store error, a bug) must not stop the worker: the engine
            # handed the run back; it is tried again with backoff, with the error on it.
            log.exception("run_drive_failed")
            with anyio.CancelScope(shield=True):
                try:
                    await self._defer(record, as_record(exc), None)
                except Exception:
                    log.exception("run_defer_failed")
            return
        finally:
            self._in_flight.discard(record.id)
            self._wake.set()
        if result is not None:
            self.resumed += 1  # the engine wrote the run's run_driven line
