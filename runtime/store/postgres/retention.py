"""The PostgreSQL store's retention: prune (see store/pruning.py) (TO WRITE)."""

from __future__ import annotations

from runtime.store.postgres.core import PgCore


class RetentionMixin(PgCore):
    """prune (see store/pruning.py) (see :class:`runtime.store.base.Store`)."""
