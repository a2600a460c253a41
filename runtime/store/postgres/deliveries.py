"""The PostgreSQL store's bus, the deliveries side: claims, outcomes, listings, redrives.

Each (event, subscriber) delivery is held by one process at a time (DESIGN 5): a
claim locks the rows it takes with ``FOR UPDATE SKIP LOCKED``, so two processes
claiming at once skip each other's rows and go on to the next ones instead of
waiting or taking the same delivery; an outcome is a compare-and-set on the holder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.errors import DeliveryNotFoundError, StoreArgumentError
from runtime.ids import is_id
from runtime.models import DeliveryRecord, DeliveryStatus
from runtime.store.paging import page_limit, status_values
from runtime.store.postgres.bus import seq_cursor
from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.postgres.sql import columns, newest_first
from runtime.store.records import DeliveryWork, Page
from runtime.store.rows import (
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    delivery_record,
    delivery_work,
)

DELIVERIES = ", ".join(
    "e.name AS event_name" if name == "event_name" else f"d.{name}" for name in DELIVERY_COLUMNS
)
"""``deliveries d JOIN events e``: :func:`runtime.store.rows.delivery_record`."""

CLAIM = (
    "WITH picked AS ("
    "SELECT c.id FROM ("
    # Due deliveries: the first few of each subscriber, each a seek on deliveries_due.
    # Rows another claim holds are skipped and the scan goes on to the next ones.
    "SELECT p.id, p.available_at, p.event_seq FROM unnest(%(subscribers)s::text[]) "
    "AS s (id) CROSS JOIN LATERAL ("
    "SELECT id, available_at, event_seq FROM deliveries WHERE status = 'pending' "
    "AND subscriber_id = s.id AND available_at <= %(now)s "
    "ORDER BY available_at, event_seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS p "
    "UNION ALL "
    # Deliveries in hand whose holder went quiet (or is gone): live work again.
    "SELECT id, available_at, event_seq FROM ("
    "SELECT id, available_at, event_seq FROM deliveries d WHERE status = 'running' "
    "AND subscriber_id = ANY(%(subscribers)s) AND (owner_id IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM workers w WHERE w.id = d.owner_id AND w.heartbeat_at >= %(stale)s)) "
    "ORDER BY available_at, event_seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS r"
    ") AS c ORDER BY c.available_at, c.event_seq LIMIT %(limit)s"
    "), claimed AS ("
    "UPDATE deliveries SET owner_id = %(owner)s, "
    # A delivery retaken from a dead holder: that cut-off attempt does not count.
    "attempts = CASE WHEN status = 'running' THEN attempts ELSE attempts + 1 END, "
    "status = 'running', updated_at = %(now)s "
    "WHERE id IN (SELECT id FROM picked) "
    "RETURNING id, event_id, subscriber_id, attempts, max_attempts"
    ") "
    "SELECT d.id AS delivery_id, d.subscriber_id, d.attempts, d.max_attempts, "
    f"{columns(EVENT_COLUMNS, 'e')} FROM claimed d JOIN events e ON e.id = d.event_id "
    "ORDER BY e.seq"
)
"""One claim: pick (and lock) the candidates, take them, return them with their events.

Each subscriber's branch locks up to ``limit`` rows, so a claim over several
subscribers may lock a few more than it takes; those are released at its commit
(a claim racing it skips them meanwhile). Ordering over all of them at once instead
would sort every due delivery of the subscribers, the backlog, on each claim.
"""


class DeliveriesMixin(PgCore):
    """Deliveries (see :class:`runtime.store.base.Store`)."""

    async def claim_deliveries(
        self,
        owner_id: str,
        subscriber_ids: Sequence[str],
        now: datetime,
        stale_before: datetime,
        limit: int,
    ) -> list[DeliveryWork]:
        if not subscriber_ids:
            return []
        params = {
            "owner": owner_id,
            "subscribers": list(subscriber_ids),
            "now": now,
            "stale": stale_before,
            "limit": limit,
        }

        async def write(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(CLAIM, params)
            return await cur.fetchall()

        rows = await self._run(write, "claim_deliveries", single=True)
        with self._decoding("claim_deliveries"):
            return [delivery_work(row) for row in rows]

    async def finish_delivery(
        self,
        delivery_id: str,
        owner_id: str,
        status: DeliveryStatus,
        now: datetime,
        *,
        error: str | None = None,
        available_at: datetime | None = None,
    ) -> bool:
        finished = now if status in (DeliveryStatus.DONE, DeliveryStatus.DEAD) else None
        params = (status.value, error, available_at, now, finished, delivery_id, owner_id)

        async def write(cur: Cursor) -> bool:
            # Compare-and-set on the holder: a holder whose delivery was taken over
            # (it went quiet) can no longer record an outcome.
            await cur.execute(
                "UPDATE deliveries SET status = %s, error = COALESCE(%s::json, error), "
                "available_at = COALESCE(%s::timestamptz, available_at), updated_at = %s, "
                "finished_at = %s, owner_id = NULL "
                "WHERE id = %s AND owner_id = %s AND status = 'running'",
                params,
            )
            return cur.rowcount == 1

        return await self._run(write, "finish_delivery", single=True)

    async def next_delivery_at(self, subscriber_ids: Sequence[str]) -> datetime | None:
        if not subscriber_ids:
            return None

        async def read(cur: Cursor) -> datetime | None:
            # MIN per subscriber reads one entry of deliveries_due; over an ANY list, all.
            await cur.execute(
                "SELECT MIN(f.due) AS due FROM unnest(%s::text[]) AS s (id) "
                "CROSS JOIN LATERAL (SELECT MIN(available_at) AS due FROM deliveries "
                "WHERE status = 'pending' AND subscriber_id = s.id) AS f",
                (list(subscriber_ids),),
            )
            row = await cur.fetchone()
            assert row is not None  # an aggregate always returns a row
            due: datetime | None = row["due"]
            return due

        return await self._run(read, "next_delivery_at", read_only=True, single=True)

    async def list_deliveries(
        self,
        *,
        status: Sequence[DeliveryStatus] | None = None,
        subscriber_id: str | None = None,
        event_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        where: list[str] = []
        params: list[Any] = []
        statuses = status_values(DeliveryStatus, status)
        if subscriber_id is not None:
            where.append("subscriber_id = %s")
            params.append(subscriber_id)
            # deliveries_by_subscriber holds (subscriber, status) before the order: a
            # subscriber's deliveries newest first are one ordered walk per status.
            statuses = statuses or [state.value for state in DeliveryStatus]
        if event_id is not None:
            where.append("event_seq = (SELECT seq FROM events WHERE id = %s)")
            params.append(event_id)
            statuses = status_values(DeliveryStatus, status)  # an event has a few
        if cursor is not None:
            # The same cursor as the SQLite store's: "<event seq>|<delivery id>".
            seq, _, delivery_id = cursor.partition("|")
            if not is_id(delivery_id, "dlv"):
                raise StoreArgumentError(f"bad cursor {cursor!r}: pass back a page's next_cursor")
            where.append("(event_seq, id) < (%s, %s)")
            params += [seq_cursor(seq), delivery_id]
        size = page_limit(limit) + 1
        order = " ORDER BY event_seq DESC, id DESC LIMIT %s"
        page, params = newest_first(
            "SELECT * FROM deliveries", order, where, params, statuses, size
        )
        sql = (
            f"SELECT {DELIVERIES} FROM ({page}) d JOIN events e ON e.id = d.event_id "
            "ORDER BY d.event_seq DESC, d.id DESC LIMIT %s"
        )
        params.append(size)

        # Never prepared: planned each time for its values. Which walk reads the least
        # depends on them (a subscriber or a status of a few deliveries, or of nearly
        # all), which a generic plan, kept after the fifth run, cannot know.
        found = await self._deliveries("list_deliveries", sql, params, prepare=False)
        items = found[:limit]
        more = len(found) > limit
        return Page(items, f"{items[-1].event_seq}|{items[-1].id}" if more else None)

    async def deliveries_of_events(self, event_seqs: Sequence[int]) -> list[DeliveryRecord]:
        seqs = [int(seq) for seq in event_seqs]
        if not seqs:
            return []
        sql = (
            f"SELECT {DELIVERIES} FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.event_seq = ANY(%s) ORDER BY d.event_seq DESC, d.id DESC"
        )
        return await self._deliveries("deliveries_of_events", sql, [seqs])

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord:
        sql = (
            f"SELECT {DELIVERIES} FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.id = %s"
        )

        found = await self._deliveries("get_delivery", sql, [delivery_id])
        if not found:
            raise DeliveryNotFoundError(delivery_id)
        return found[0]

    async def _deliveries(
        self, operation: str, sql: str, params: list[Any], *, prepare: bool | None = None
    ) -> list[DeliveryRecord]:
        """The deliveries a ``SELECT {DELIVERIES} ...`` reads (``prepare``: psycopg's)."""

        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(sql, params, prepare=prepare)
            return await cur.fetchall()

        rows = await self._run(read, operation, read_only=True, single=True)
        with self._decoding(operation):
            return [delivery_record(row) for row in rows]

    async def redrive(self, delivery_ids: Sequence[str] | None, now: datetime) -> int:
        sql = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, available_at = %s, "
            "updated_at = %s, finished_at = NULL, owner_id = NULL WHERE status = 'dead'"
        )
        params: list[Any] = [now, now]
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            sql += " AND id = ANY(%s)"
            params.append(list(delivery_ids))

        async def write(cur: Cursor) -> int:
            await cur.execute(sql, params)
            revived = cur.rowcount
            if revived > 0:
                await self._notify(cur, "delivery")
            return revived

        return await self._run(write, "redrive")
