"""The PostgreSQL store's queue: next_run_due, recoverable_runs, unclaimed_unknown (TO WRITE)."""

from __future__ import annotations

from runtime.store.postgres.core import PgCore


class QueueMixin(PgCore):
    """next_run_due, recoverable_runs, unclaimed_unknown (see :class:`runtime.store.base.Store`)."""
