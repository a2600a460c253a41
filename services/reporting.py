"""Numbers and housekeeping: daily analytics and reports, backups, the log table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.journal import DemoService, Ids, Journal
from services.orders import OrderService


class AnalyticsService(DemoService):
    """Where the daily metrics of seed 002's analytics job are kept.

    Attributes:
        daily_metrics: ``"YYYY-MM-DD"`` -> that day's metrics.
    """

    name = "analytics"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.daily_metrics: dict[str, dict[str, Any]] = {}

    async def store_daily_metrics(self, metrics: dict[str, Any]) -> None:
        """Store (or replace) the metrics of ``metrics["date"]``.

        Keyed by day, so storing a day again after a retry replaces it instead of
        counting it twice.
        """
        self.daily_metrics[metrics["date"]] = dict(metrics)
        self._record("store_daily_metrics", metrics["date"])


class ReportService(DemoService):
    """Builds the daily report from the store's orders.

    Args:
        orders: where the orders are read from.
    """

    name = "reports"

    def __init__(self, orders: OrderService, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self._orders = orders
        self.generated: list[str] = []

    async def generate_report(self, date: str) -> dict[str, Any]:
        """``{"date", "orders", "revenue"}`` of one day (``YYYY-MM-DD``, UTC).

        ``orders`` counts the day's orders, ``revenue`` sums the captured ones
        (in cents).
        """
        day = [
            o for o in self._orders.orders.values() if o["created_at"].date().isoformat() == date
        ]
        revenue = sum(o["total"] for o in day if o["payment_status"] == "captured")
        self.generated.append(date)
        return {"date": date, "orders": len(day), "revenue": revenue}


class BackupService(DemoService):
    """Backups of the application's data.

    Attributes:
        backups: ``{"id", "type"}`` per backup taken, in order (``type`` is
            ``"full"`` or ``"incremental"``).
    """

    name = "backups"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.backups: list[dict[str, Any]] = []
        self._ids = Ids("backup")

    async def full_backup(self) -> dict[str, Any]:
        """Copy everything."""
        return self._take("full")

    async def incremental_backup(self) -> dict[str, Any]:
        """Copy what changed since the previous backup."""
        return self._take("incremental")

    def _take(self, kind: str) -> dict[str, Any]:
        backup = {"id": self._ids.next(), "type": kind}
        self.backups.append(backup)
        self._record(f"{kind}_backup", backup["id"])
        return dict(backup)


class LogService(DemoService):
    """An application log table (the cleanup example's ``logs``).

    Attributes:
        records: ``{"id", "message", "created_at"}`` (aware UTC), oldest first.
    """

    name = "logs"

    def __init__(
        self, records: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.records: list[dict[str, Any]] = [dict(r) for r in records]

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete the records created before ``cutoff``; returns how many went."""
        kept = [r for r in self.records if r["created_at"] >= cutoff]
        deleted = len(self.records) - len(kept)
        self.records = kept
        self._record("delete_older_than", f"{deleted} before {cutoff.isoformat()}")
        return deleted
