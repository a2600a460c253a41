"""The PostgreSQL store's bus: emit, sync_subscribers, list_subscribers, fan_out, claim_deliveries, finish_delivery, next_delivery_at, list_events, list_deliveries, redrive (TO WRITE)."""

from __future__ import annotations

from runtime.store.postgres.core import PgCore


class BusMixin(PgCore):
    """emit, sync_subscribers, list_subscribers, fan_out, claim_deliveries, finish_delivery, next_delivery_at, list_events, list_deliveries, redrive (see :class:`runtime.store.base.Store`)."""
