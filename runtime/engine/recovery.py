"""Recovery: find runs nobody live holds and resume them.

At start and then every ``interval`` seconds (or at once when poked, e.g.
when a workflow becomes known), it forgets the workers of this host whose
process is gone, which releases their runs at once, and resumes every due,
unheld run of a known workflow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from runtime.engine.leases import LEASE_TTL, dead_local_workers
from runtime.engine.state import logger
from runtime.errors import LeaseLostError, UnknownWorkflowError
from runtime.models import RunRecord

if TYPE_CHECKING:
    from runtime.container import Container
    from runtime.engine.executor import Engine

BATCH = 100


class Recovery:
    """The recovery loop of one runtime."""

    def __init__(self, engine: Engine, container: Container, interval: float = 1.0) -> None:
        self.engine = engine
        self.container = container
        self.interval = interval
        self._wake = anyio.Event()
        self.resumed = 0

    def poke(self) -> None:
        """Scan now rather than at the next interval."""
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Scan until cancelled; ``started`` after the first scan was launched."""
        async with anyio.create_task_group() as tg:
            await self.scan(tg)
            task_status.started()
            while True:
                with anyio.move_on_after(self.interval):
                    await self._wake.wait()
                self._wake = anyio.Event()
                await self.scan(tg)

    async def scan(self, tg: TaskGroup) -> int:
        """Release dead local workers' runs and start resuming what is due; how many started."""
        engine = self.engine
        store, now = engine.store, engine.clock.now()
        dead = dead_local_workers(await store.list_workers(), engine.identity)
        if dead:
            released = await store.remove_workers(dead, now)
            logger.info("dead_workers_released", workers=dead, runs=released)
        runs = await store.recoverable_runs(
            engine.registry.names(), now, now - timedelta(seconds=LEASE_TTL), BATCH
        )
        started = 0
        for record in runs:
            if record.id in engine.active_runs:
                continue
            try:
                workflow = engine.registry.get(record.workflow, record.version)
            except UnknownWorkflowError as exc:
                logger.warning("run_waits_for_code", run_id=record.id, error=str(exc))
                continue
            tg.start_soon(self._resume, workflow, record)
            started += 1
        return started

    async def _resume(self, workflow: Any, record: RunRecord) -> None:
        log = logger.bind(run_id=record.id, workflow=record.workflow)
        try:
            result = await self.engine.resume(workflow, self.container, record)
        except LeaseLostError:
            log.warning("resume_lease_lost")
            return
        except Exception:
            # One run's trouble (a store error, a bug) must not stop recovery of the others;
            # it is logged with its traceback and the run is picked up again next scan.
            log.exception("resume_failed")
            return
        if result is not None:
            self.resumed += 1
            log.info("run_resumed", status=result.status.value)
