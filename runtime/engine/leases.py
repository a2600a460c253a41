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

from runtime.ids import new_id
from runtime.store.base import WorkerRow

LEASE_TTL = 30.0
"""Seconds without a heartbeat after which a worker's runs may be taken over."""

HEARTBEAT_INTERVAL = LEASE_TTL / 3


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """This process as a worker: an id unique per start, the host, the pid."""

    id: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> WorkerIdentity:
        return cls(id=new_id("wrk"), host=socket.gethostname(), pid=os.getpid())

    def row(self, now: datetime) -> WorkerRow:
        return WorkerRow(self.id, self.host, self.pid, now, now)


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
    """The workers registered on this host whose process is gone (or is a previous us)."""
    dead = []
    for worker in workers:
        if worker.id == me.id or worker.host != me.host:
            continue
        # Same pid but another id: an earlier process that had our pid is gone.
        if worker.pid == me.pid or not process_alive(worker.pid):
            dead.append(worker.id)
    return dead
