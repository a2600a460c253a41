"""Clients for application code in another process: emit events, start and read runs.

``Client`` is async (FastAPI, aiohttp, scripts); ``SyncClient`` is blocking
(Django, Flask views). Neither runs a worker: they write to the same database
the service reads, and the service wakes within milliseconds when another
process commits. Both work right after construction (the database is opened,
and its schema created or migrated, on first use), as context managers, and
have ``close()``.

A client does not import the project's workflows, so a run is started by
name; a name no worker knows waits ``pending`` (the worker logs it) until code
that defines it is deployed.
"""

from __future__ import annotations

import queue
import threading
import weakref
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from runtime.bus import encode_event
from runtime.clock import AlignedClock, Clock
from runtime.config import parse_database_url
from runtime.engine.executor import pending_run
from runtime.errors import ConfigError
from runtime.limits import folder_arg, text
from runtime.models import RunKind, RunRecord, RunStatus
from runtime.runs import RunHandle, RunsApi, run_options, wait_timeout
from runtime.store import align_clock, open_store
from runtime.store.base import Store
from runtime.store.records import RunPage

RECHECK = 1.0
"""Seconds a wait for a run's result goes without reading the run when nothing changed."""


class Client(RunsApi):
    """Emit events, start, read and manage runs against a runtime's database.

    Args:
        database: the same URL the service uses.
        base_dir: where a relative SQLite path starts (the working directory by default).
        clock: time source (tests inject one).
    """

    def __init__(
        self, database: str, *, base_dir: Path | str | None = None, clock: Clock | None = None
    ) -> None:
        self.database = text(database, "Client(database=...)", error=ConfigError)
        self._base_dir = folder_arg(base_dir, "Client(base_dir=...)", error=ConfigError)
        parse_database_url(database, self._base_dir)  # a bad URL fails here, not at first use
        self._clock: Clock = clock or AlignedClock()
        self._store: Store | None = None
        self._lock: anyio.Lock | None = None

    async def _open(self) -> Store:
        if self._store is None:
            if self._lock is None:
                self._lock = anyio.Lock()
            async with self._lock:
                if self._store is None:
                    store = await open_store(self.database, self._base_dir)
                    try:
                        if isinstance(self._clock, AlignedClock):
                            await align_clock(self._clock, store)
                    except BaseException:
                        await store.close()
                        raise
                    self._store = store
        return self._store

    async def close(self) -> None:
        """Close the database connection (the client can be used again after)."""
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    async def __aenter__(self) -> Client:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def emit(
        self,
        name: str,
        data: Any = None,
        *,
        metadata: dict[str, Any] | None = None,
        delay: float | timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Store an event durably; the service delivers it. Returns the event id.

        Raises:
            DefinitionError: a bad name or argument; nothing stored.
            SerializationError: ``data`` or ``metadata`` cannot be stored as JSON.
        """
        event = encode_event(
            name,
            data,
            metadata=metadata,
            delay=delay,
            idempotency_key=idempotency_key,
            now=self._clock.now(),
        )
        store = await self._open()
        event_id, _ = await store.emit(event)
        return event_id

    async def run(
        self,
        workflow: str,
        input: Any = None,
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
        delay: float | timedelta = 0.0,
    ) -> RunHandle:
        """Enqueue a run of ``workflow`` (by name); a service's worker executes it.

        Raises:
            DefinitionError: a bad argument (an empty name, a NaN delay, ...); nothing stored.
            SerializationError: ``input`` cannot be stored as JSON; nothing stored.
        """
        seconds = run_options(workflow, version, idempotency_key, delay)
        now = self._clock.now()
        new_run = pending_run(
            workflow,
            input,
            version=version,
            kind=RunKind.UNRESOLVED,
            idempotency_key=idempotency_key,
            now=now,
            delay=seconds,
        )
        store = await self._open()
        record, _ = await store.create_run(new_run)
        return RunHandle(record.id, self)

    async def _open_store(self) -> Store:
        return await self._open()

    def _now(self) -> datetime:
        return self._clock.now()

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until the run is terminal; checks only when the database changed."""
        timeout = wait_timeout(timeout)
        store = await self._open()
        with anyio.fail_after(timeout):
            token = await store.change_token()
            while True:
                record = await store.get_run(run_id, steps=False)
                if record.status.terminal:
                    return record
                # Read again when the database changed (or after a while regardless: a
                # change is a hint that may be missed, never the record).
                token = await store.wait_change(token, RECHECK)


class LoopThread:
    """An event loop in a daemon thread, reached through a blocking portal.

    A daemon thread, so a client that is never closed does not keep the process
    alive at exit (every write it made is already committed); :class:`SyncClient`
    also closes it from a finalizer, which runs at exit too.
    """

    def __init__(self) -> None:
        ready: queue.SimpleQueue[BlockingPortal | BaseException] = queue.SimpleQueue()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                ready.put(portal)
                await portal.sleep_until_stopped()

        def main() -> None:
            try:
                anyio.run(serve, backend="asyncio")
            except BaseException as exc:  # handed to the constructor's caller
                ready.put(exc)

        self._thread = threading.Thread(target=main, name="runtime-sync-client", daemon=True)
        self._thread.start()
        started = ready.get()
        if isinstance(started, BaseException):
            raise started
        self.portal = started

    def stop(self) -> None:
        """Stop the loop and wait for its thread (not from the loop's own thread)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a SyncClient cannot be closed from its own event loop")
        self.portal.call(self.portal.stop)
        self._thread.join()


class _Loop:
    """What a :class:`SyncClient` owns, apart from it, so a finalizer can close it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.thread: LoopThread | None = None
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            try:
                thread.portal.call(self.client.close)
            finally:
                thread.stop()


class SyncClient:
    """The blocking twin of :class:`Client`, for Django or Flask views.

    It runs an event loop in a background (daemon) thread; its methods may be
    called from any thread. Call ``close()`` (or use it as a context manager) at
    shutdown; a client that is not closed is closed when it is garbage collected
    or at the latest when the interpreter exits, so a script that forgets does
    not hang.
    """

    def __init__(self, database: str, *, base_dir: Path | str | None = None) -> None:
        self._client = Client(database, base_dir=base_dir)
        self._loop = _Loop(self._client)
        self._finalizer = weakref.finalize(self, self._loop.close)

    @property
    def _portal(self) -> BlockingPortal | None:
        thread = self._loop.thread
        return thread.portal if thread is not None else None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = self._loop
        with loop.lock:  # views in several threads may make the first call at once
            if loop.thread is None:
                loop.thread = LoopThread()
            portal = loop.thread.portal

        async def call() -> Any:
            return await fn(*args, **kwargs)

        return portal.call(call)

    def emit(self, name: str, data: Any = None, **options: Any) -> str:
        """See :meth:`Client.emit`."""
        event_id: str = self._call(self._client.emit, name, data, **options)
        return event_id

    def run(self, workflow: str, input: Any = None, **options: Any) -> SyncRunHandle:
        """See :meth:`Client.run`."""
        handle: RunHandle = self._call(self._client.run, workflow, input, **options)
        return SyncRunHandle(handle, self)

    def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        """See :meth:`Client.get_run`."""
        record: RunRecord = self._call(self._client.get_run, run_id, steps=steps)
        return record

    def list_runs(self, **options: Any) -> RunPage:
        """See :meth:`Client.list_runs`."""
        page: RunPage = self._call(self._client.list_runs, **options)
        return page

    def pause(self, run_id: str) -> RunRecord:
        """See :meth:`Client.pause`."""
        record: RunRecord = self._call(self._client.pause, run_id)
        return record

    def resume(self, run_id: str) -> RunRecord:
        """See :meth:`Client.resume`."""
        record: RunRecord = self._call(self._client.resume, run_id)
        return record

    def cancel(self, run_id: str) -> RunRecord:
        """See :meth:`Client.cancel`."""
        record: RunRecord = self._call(self._client.cancel, run_id)
        return record

    def retry(self, run_id: str) -> RunRecord:
        """See :meth:`Client.retry`."""
        record: RunRecord = self._call(self._client.retry, run_id)
        return record

    def close(self) -> None:
        """Close the connection and stop the background loop (it starts again on use)."""
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncRunHandle:
    """A run started through a :class:`SyncClient`."""

    def __init__(self, handle: RunHandle, client: SyncClient) -> None:
        self.run_id = handle.run_id
        self._handle = handle
        self._client = client

    def status(self) -> RunStatus:
        """The run's status now."""
        status: RunStatus = self._client._call(self._handle.status)
        return status

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end; its output, or :class:`RunFailed`."""
        return self._client._call(self._handle.result, timeout)
