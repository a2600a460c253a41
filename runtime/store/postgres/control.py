"""The PostgreSQL store's control: control_run, defer_run (TO WRITE)."""

from __future__ import annotations

from runtime.store.postgres.core import PgCore


class ControlMixin(PgCore):
    """control_run, defer_run (see :class:`runtime.store.base.Store`)."""
