"""``runtime start`` with a short lease: ``python -m tests.multiprocess.launch TTL <runtime args>``.

A dead worker's runs are taken over at once when it ran on this host (its pid is gone),
and otherwise when its lease expires: :data:`runtime.engine.leases.LEASE_TTL` seconds
(30) after its last heartbeat. To watch that second path in a test that lasts seconds,
not minutes, every process of the multi-process tests runs the runtime's own CLI through
this module, which first sets the lease to ``TTL`` seconds (the heartbeat to a third of
it) in every module that reads it. Nothing else differs from ``python -m runtime``.
"""

from __future__ import annotations

import sys

import runtime.engine.executor
import runtime.engine.leases
import runtime.engine.worker
import runtime.service
import runtime.web.console
import runtime.web.metrics
from runtime.cli import main

READERS = (
    runtime.engine.leases,
    runtime.engine.executor,
    runtime.engine.worker,
    runtime.service,
    runtime.web.console,
    runtime.web.metrics,
)
"""The modules that read ``LEASE_TTL`` (each holds its own name for it)."""


def shorten_lease(ttl: float) -> None:
    """Make the lease ``ttl`` seconds long, and the heartbeat a third of that, everywhere."""
    for module in READERS:
        if not hasattr(module, "LEASE_TTL"):
            raise RuntimeError(f"{module.__name__} no longer reads LEASE_TTL: update {__name__}")
        module.LEASE_TTL = ttl  # type: ignore[attr-defined]
    runtime.engine.leases.HEARTBEAT_INTERVAL = ttl / 3


if __name__ == "__main__":
    shorten_lease(float(sys.argv[1]))
    main(args=sys.argv[2:], prog_name="runtime")
