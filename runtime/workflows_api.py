"""``Workflows``: the in-process workflow API of a running ``Runtime`` (``rt.workflows``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import anyio

from runtime.container import Container
from runtime.engine.executor import Engine
from runtime.engine.worker import Worker
from runtime.models import RunRecord
from runtime.registry import Registry
from runtime.runs import RunHandle, RunsApi, run_options, wait_timeout
from runtime.sdk.definitions import DEFINITION_TYPES, WorkflowDefinition
from runtime.sdk.running import WorkflowResult
from runtime.store.base import Store


class Workflows(RunsApi):
    """The runtime's workflow API, registered in the container as ``runtime.workflows``.

    ``wf(container).run()`` executes through it; ``run`` starts background runs;
    ``get_run``/``list_runs`` read them; ``pause``/``resume``/``cancel``/``retry``
    manage them.

    Args:
        engine: drives inline runs and enqueues background ones.
        registry: resolves workflows given by name.
        worker: poked when a run is enqueued or managed; ``None`` when the runtime
            runs no worker (``background=False``).
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
        """Run ``workflow`` in the caller's task (``wf(container).run()``)."""
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
        self._changed()
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
