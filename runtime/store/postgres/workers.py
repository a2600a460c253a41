"""The PostgreSQL store's workers: upsert_worker, heartbeat, list_workers, remove_workers (TO WRITE)."""

from __future__ import annotations

from runtime.store.postgres.core import PgCore


class WorkersMixin(PgCore):
    """upsert_worker, heartbeat, list_workers, remove_workers (see :class:`runtime.store.base.Store`)."""
