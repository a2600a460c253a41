"""Reading and managing runs: the API ``rt.workflows`` and the clients share, and run handles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from runtime.engine.run import log_run_end
from runtime.errors import DefinitionError, RunFailed
from runtime.limits import MAX_PAGE, count, duration, shown, text
from runtime.models import RunAction, RunRecord, RunStatus, StepStatus
from runtime.store.base import Store
from runtime.store.records import RunPage


def run_options(
    workflow: Any, version: Any, idempotency_key: Any, delay: float | timedelta
) -> float:
    """Check a start's arguments before anything is stored; the delay in seconds.

    Raises:
        DefinitionError: naming the bad argument.
    """
    text(workflow, "workflow")
    if version is not None:
        text(version, "version")
    if idempotency_key is not None:
        text(idempotency_key, "idempotency_key")
    return duration(delay, "delay")


def run_id_arg(run_id: Any) -> str:
    """``run_id`` checked to be text a database can hold (an unknown id is not found later).

    Raises:
        DefinitionError: not a string, or not valid UTF-8 (lone surrogates).
    """
    if not isinstance(run_id, str):
        raise DefinitionError(f"run_id must be a run id string, got {shown(run_id)}")
    if run_id:
        text(run_id, "run_id")
    return run_id


def wait_timeout(timeout: Any) -> float | None:
    """A ``wait`` timeout in seconds (``None``: no limit), checked like every duration."""
    return None if timeout is None else duration(timeout, "timeout", positive=True)


def run_filter(
    status: Sequence[RunStatus | str] | RunStatus | str | None,
    workflow: Any,
    limit: Any,
    cursor: Any,
) -> list[RunStatus] | None:
    """Check the arguments of ``list_runs``; the statuses asked for (``None``: any).

    Raises:
        DefinitionError: naming the bad argument (an unknown status lists the known ones).
    """
    if workflow is not None:
        text(workflow, "workflow")
    count(limit, "limit", minimum=1, maximum=MAX_PAGE)
    if cursor is not None and not isinstance(cursor, str):
        raise DefinitionError(f"cursor must be a next_cursor string, got {shown(cursor)}")
    if status is None:
        return None
    given: list[Any] = (
        list(status) if isinstance(status, list | tuple | set | frozenset) else [status]
    )
    statuses = []
    for value in given:
        try:
            statuses.append(RunStatus(value))
        except (ValueError, TypeError):
            known = ", ".join(s.value for s in RunStatus)
            raise DefinitionError(
                f"status: unknown run status {shown(value)}; known: {known}"
            ) from None
    return statuses or None


class RunsApi:
    """Read runs and manage them; subclasses say where the store is and how to wait."""

    async def _open_store(self) -> Store:
        raise NotImplementedError  # protocol

    def _now(self) -> datetime:
        raise NotImplementedError  # protocol

    def _changed(self) -> None:
        """Called after a management action was committed (e.g. to wake a worker)."""

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until the run is terminal and return it."""
        raise NotImplementedError  # protocol

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        """A run with its steps, attempts, errors and timings.

        Raises:
            RunNotFoundError: no such run.
        """
        return await (await self._open_store()).get_run(run_id_arg(run_id), steps=steps)

    async def list_runs(
        self,
        *,
        status: Sequence[RunStatus | str] | RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first; pass ``next_cursor`` back for the next page.

        Raises:
            DefinitionError: an unknown status, an empty workflow name, a ``limit``
                outside 1 to 10,000.
        """
        statuses = run_filter(status, workflow, limit, cursor)
        return await (await self._open_store()).list_runs(
            status=statuses, workflow=workflow, limit=limit, cursor=cursor
        )

    async def pause(self, run_id: str) -> RunRecord:
        """Pause a pending, running or sleeping run (a running step finishes first)."""
        return await self._control(run_id, RunAction.PAUSE)

    async def resume(self, run_id: str) -> RunRecord:
        """Resume a paused run: due now (a durable sleep keeps its wake-up time)."""
        return await self._control(run_id, RunAction.RESUME)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run that has not ended; its completed steps are compensated."""
        return await self._control(run_id, RunAction.CANCEL)

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed, compensation_failed or canceled run again from where it failed."""
        return await self._control(run_id, RunAction.RETRY)

    async def _control(self, run_id: str, action: RunAction) -> RunRecord:
        store = await self._open_store()
        record = await store.control_run(run_id_arg(run_id), action, self._now())
        self._changed()
        if action is RunAction.CANCEL:
            # Nothing to undo: the run ended here, not in a worker, so this is its last line.
            log_run_end(record.id, record.workflow, record.status, record.error)
        return record


class RunHandle:
    """A background run: its id, its status, and a way to wait for its result."""

    def __init__(self, run_id: str, api: RunsApi) -> None:
        self.run_id = run_id
        self._api = api

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    async def status(self) -> RunStatus:
        """The run's status now."""
        return (await self._api.get_run(self.run_id, steps=False)).status

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end and return its output.

        Raises:
            RunFailed: the run ended failed, compensation_failed or canceled.
            TimeoutError: it did not end within ``timeout`` seconds.
            DefinitionError: ``timeout`` is not a number of seconds.
        """
        if timeout is not None:
            timeout = duration(timeout, "timeout", positive=True)
        try:
            record = await self._api.wait(self.run_id, timeout)
        except TimeoutError:
            status = await self.status()
            raise TimeoutError(
                f"run {self.run_id} did not end within {timeout:g} s; it is {status.value} "
                "(the run goes on: call result() again to wait longer)"
            ) from None
        if record.status is not RunStatus.COMPLETED:
            raise RunFailed(record.id, record.status.value, record.error)
        return record.output


def current_step(record: RunRecord) -> dict[str, Any] | None:
    """The step a run has in flight, from what is stored; ``None`` if it has none.

    A dict with ``seq``, ``name``, ``state`` (``running``, ``sleeping`` in a durable
    sleep, ``retrying`` while it waits out a retry interval, ``compensating``),
    ``attempts`` (failed so far), ``since`` and ``wakes_at`` (sleeping and retrying).
    A run that ended has none. A step is recorded when it ends (or fails an attempt), so
    the step a ``running`` run is in the middle of may have no record yet: it is then the
    next step number, with ``name`` ``None``, running since the last checkpoint.
    """
    if record.status.terminal:
        return None  # a run canceled while it slept keeps its sleep's step as it was
    steps = sorted(record.steps, key=lambda s: s.seq, reverse=True)
    if record.status is RunStatus.COMPENSATING:
        undoing = [s for s in steps if s.status is StepStatus.COMPENSATING]
        if not undoing:
            return None
        return _in_flight(undoing[0].seq, undoing[0].name, "compensating", 0, None, None)
    started = [s for s in steps if s.status is StepStatus.RUNNING]
    if started:
        step = started[0]
        wakes = _wake_at(step.output)
        if wakes is not None:  # a durable sleep (its wake-up time holds while paused too)
            state = "sleeping"
        elif record.status is RunStatus.SLEEPING:
            state, wakes = "retrying", record.available_at
        elif record.status is RunStatus.RUNNING:
            state = "running"
        else:
            return None  # pending or paused: nothing in flight
        return _in_flight(step.seq, step.name, state, step.attempts, step.started_at, wakes)
    if record.status is not RunStatus.RUNNING:
        return None
    ends = [s.ended_at for s in record.steps if s.ended_at is not None]
    after = max((s.seq for s in record.steps), default=0)
    return _in_flight(after + 1, None, "running", 0, max(ends, default=record.created_at), None)


def _in_flight(
    seq: int,
    name: str | None,
    state: str,
    attempts: int,
    since: datetime | None,
    wakes_at: datetime | None,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "name": name,
        "state": state,
        "attempts": attempts,
        "since": since,
        "wakes_at": wakes_at,
    }


def _wake_at(output: Any) -> datetime | None:
    """The wake-up time a durable sleep's record holds."""
    if isinstance(output, dict) and isinstance(output.get("wake_at"), str):
        return datetime.fromisoformat(output["wake_at"])
    return None
