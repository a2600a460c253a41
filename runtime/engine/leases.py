"""Worker identity and liveness: who holds a run, and whether it is still alive.

A run's lease is its ``owner_id``; every lease a worker holds is renewed at
once by the worker's heartbeat row. A lease is lost when the heartbeat is
older than the TTL, or at once when the owner is on this host and its process
is gone (so a restarted process does not wait out its own dead lease).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from datetime import datetime
from typing import Any

import anyio
import structlog

from runtime.clock import Clock
from runtime.errors import StoreError
from runtime.ids import new_id
from runtime.store.base import Store
from runtime.store.records import WorkerRow

logger = structlog.get_logger("runtime")

LEASE_TTL = 30.0
"""Seconds without a heartbeat after which a worker's runs may be taken over."""

HEARTBEAT_INTERVAL = LEASE_TTL / 3


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """This runtime as a worker: an id unique per start, its host, its process.

    ``host`` is the host name and the pid namespace (containers sharing a host name
    do not share pids), so that "same host" means "pids are comparable".
    """

    id: str
    host: str
    pid: int
    process_start: str | None = None

    @classmethod
    def current(cls) -> WorkerIdentity:
        """A new identity for this process (a new id at every start)."""
        pid = os.getpid()
        return cls(id=new_id("wrk"), host=_host(), pid=pid, process_start=process_start(pid))

    def row(self, now: datetime) -> WorkerRow:
        """This worker as the store keeps it, with ``now`` as its heartbeat."""
        return WorkerRow(self.id, self.host, self.pid, now, now, self.process_start)


def _host() -> str:
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/pidns:{namespace}"


def process_start(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks since boot (Linux); ``None`` elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a running (not zombie) process on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def dead_local_workers(workers: list[WorkerRow], me: WorkerIdentity) -> list[str]:
    """The workers registered on this host whose process is gone.

    A pid that is alive but started at another time than the worker's process was
    reused: that worker is gone too. Another runtime in this very process (same pid,
    same start) is alive.
    """
    dead = []
    for worker in workers:
        if worker.id == me.id or worker.host != me.host:
            continue
        if not process_alive(worker.pid):
            dead.append(worker.id)
            continue
        started = process_start(worker.pid)
        if worker.process_start is not None and started is not None:
            if started != worker.process_start:
                dead.append(worker.id)
        elif worker.pid == me.pid:
            # No start time to compare (not Linux): our pid under another worker id is
            # most likely an earlier process that had it.
            dead.append(worker.id)
    return dead


async def keep_alive(
    store: Store,
    identity: WorkerIdentity,
    clock: Clock,
    *,
    task_status: Any = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Beat ``identity``'s heartbeat every :data:`HEARTBEAT_INTERVAL` until cancelled."""
    task_status.started()
    while True:
        await clock.sleep(HEARTBEAT_INTERVAL)
        try:
            now = clock.now()
            if not await store.heartbeat(identity.id, now):
                # Taken for dead (its row removed): register again; the runs it still
                # drives fail their next checkpoint and go back to the queue.
                await store.upsert_worker(identity.row(now))
        except StoreError:
            # Missed beats only matter after LEASE_TTL (three of them); keep beating.
            logger.exception("heartbeat_failed")
