"""The PostgreSQL store's schedules: sync_schedules, list_schedules, fire, list_firings (TO WRITE)."""

from __future__ import annotations

from runtime.store.postgres.core import PgCore


class SchedulesMixin(PgCore):
    """sync_schedules, list_schedules, fire, list_firings (see :class:`runtime.store.base.Store`)."""
