"""The PostgreSQL store's bus, the events side: the outbox, the subscribers, fan-out, listings.

Many processes share these tables. Fan-out is safe for any number of them at once:
each locks the events it fans out (``FOR UPDATE SKIP LOCKED``, so two never wait for
each other nor take the same event) and marks exactly those events, never a range,
since an event with a lower ``seq`` may commit after one with a higher ``seq``. The
deliveries' unique (event, subscriber) key with ``ON CONFLICT DO NOTHING`` is the last
guard. The deliveries themselves are in :mod:`runtime.store.postgres.deliveries`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.errors import StoreArgumentError
from runtime.ids import new_id
from runtime.store.paging import page_limit
from runtime.store.postgres.core import Cursor, PgCore
from runtime.store.postgres.outbox import insert_event
from runtime.store.postgres.sql import columns
from runtime.store.records import NewEvent, Page, SubscriberRow
from runtime.store.rows import EVENT_COLUMNS, SUBSCRIBER_COLUMNS, event_record, subscriber_row
from runtime.store.rules.routing import Route, route

EVENTS = columns(EVENT_COLUMNS)
SUBSCRIBERS = columns(SUBSCRIBER_COLUMNS)

BIGINT = range(-(2**63), 2**63)
"""The values a ``seq`` (``bigint``) can take: a cursor outside is refused, not sent on."""

INSERT_DELIVERIES = (
    "INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, max_attempts, "
    "available_at, created_at, updated_at) "
    "SELECT d.id, d.event_id, d.event_seq, d.subscriber_id, 'pending', d.max_attempts, "
    "d.available_at, %(now)s, %(now)s FROM unnest("
    "%(ids)s::text[], %(event_ids)s::text[], %(seqs)s::bigint[], %(subscribers)s::text[], "
    "%(attempts)s::integer[], %(due)s::timestamptz[]"
    ") AS d (id, event_id, event_seq, subscriber_id, max_attempts, available_at) "
    "ON CONFLICT (event_id, subscriber_id) DO NOTHING"
)
"""All of one fan-out's deliveries in one statement (one array per column)."""


class BusMixin(PgCore):
    """Events and subscribers (see :class:`runtime.store.base.Store`)."""

    async def emit(self, event: NewEvent) -> tuple[str, bool]:
        async def write(cur: Cursor) -> tuple[str, bool]:
            event_id, stored = await insert_event(cur, event)
            if stored:
                await self._notify(cur, "event")
            return event_id, stored

        return await self._run(write, "emit")

    async def sync_subscribers(
        self,
        subscribers: Sequence[SubscriberRow],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> None:
        # In id order: two processes upserting overlapping sets lock the rows alike.
        declared = sorted(subscribers, key=lambda s: s.id)
        rows = [(s.id, json.dumps(list(s.patterns)), s.max_attempts, now) for s in declared]
        ids = [s.id for s in declared]
        live = live_since if live_since is not None else now

        async def write(cur: Cursor) -> None:
            # One declaration at a time (plain reads, fan-out's, are not blocked): two
            # processes each upserting theirs and deactivating the other's would lock
            # the same rows in opposite orders (a deadlock), and each would judge the
            # other's declarations before they commit.
            await cur.execute("LOCK TABLE subscribers IN SHARE ROW EXCLUSIVE MODE")
            if rows:
                await cur.executemany(
                    "INSERT INTO subscribers (id, patterns, max_attempts, active, updated_at) "
                    "VALUES (%s, %s, %s, true, %s) ON CONFLICT (id) DO UPDATE SET "
                    "patterns = excluded.patterns, max_attempts = excluded.max_attempts, "
                    "active = true, updated_at = excluded.updated_at",
                    rows,
                )
            # Declarations of workers that are gone (removed, or never beat again) lapse.
            await cur.execute(
                "DELETE FROM worker_subscribers d WHERE NOT EXISTS "
                "(SELECT 1 FROM workers w WHERE w.id = d.worker_id)"
            )
            if worker_id is not None:
                await cur.execute(
                    "DELETE FROM worker_subscribers WHERE worker_id = %s", (worker_id,)
                )
                await cur.execute(
                    "INSERT INTO worker_subscribers (worker_id, subscriber_id) "
                    "SELECT %s, unnest(%s::text[])",
                    (worker_id, ids),
                )
            # The others stay active while another live worker declares them (a rolling
            # deploy's old process keeps receiving its events).
            await cur.execute(
                "UPDATE subscribers SET active = false, updated_at = %s "
                "WHERE active AND NOT (id = ANY(%s)) AND id NOT IN ("
                "SELECT d.subscriber_id FROM worker_subscribers d "
                "JOIN workers w ON w.id = d.worker_id WHERE w.heartbeat_at >= %s "
                "AND w.id IS DISTINCT FROM %s)",
                (now, ids, live, worker_id),
            )

        await self._run(write, "sync_subscribers")

    async def list_subscribers(self) -> list[SubscriberRow]:
        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(f"SELECT {SUBSCRIBERS} FROM subscribers ORDER BY id")
            return await cur.fetchall()

        rows = await self._run(read, "list_subscribers", read_only=True, single=True)
        with self._decoding("list_subscribers"):
            return [subscriber_row(row) for row in rows]

    async def fan_out(self, now: datetime, limit: int) -> int:
        async def write(cur: Cursor) -> int:
            # Events another process is fanning out right now are skipped, not waited
            # for; an event it committed in the meantime no longer matches (READ
            # COMMITTED rechecks a row it locks against the row's newest version).
            await cur.execute(
                "SELECT seq, id, name, available_at FROM events WHERE NOT fanned_out "
                "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
                (limit,),
            )
            events = await cur.fetchall()
            if not events:
                return 0
            await cur.execute("SELECT id, patterns, max_attempts FROM subscribers WHERE active")
            subscribers = [
                Route(row["id"], tuple(json.loads(row["patterns"])), row["max_attempts"])
                for row in await cur.fetchall()
            ]
            routes: dict[str, list[Route]] = {}
            deliveries: dict[str, list[Any]] = {
                key: [] for key in ("ids", "event_ids", "seqs", "subscribers", "attempts", "due")
            }
            for event in events:
                found = routes.get(event["name"])
                if found is None:
                    found = routes[event["name"]] = route(event["name"], subscribers)
                for r in found:
                    deliveries["ids"].append(new_id("dlv"))
                    deliveries["event_ids"].append(event["id"])
                    deliveries["seqs"].append(event["seq"])
                    deliveries["subscribers"].append(r.subscriber_id)
                    deliveries["attempts"].append(r.max_attempts)
                    deliveries["due"].append(event["available_at"])
            if deliveries["ids"]:
                await cur.execute(INSERT_DELIVERIES, {**deliveries, "now": now})
                if cur.rowcount > 0:
                    await self._notify(cur, "delivery")
            # Exactly the events locked above. A range (seq <= the last) would wait for
            # the events another fan-out holds (two waiting so, a deadlock), and would mark
            # an event with a lower seq that committed since the SELECT above (this
            # statement sees it, READ COMMITTED) without its deliveries.
            await cur.execute(
                "UPDATE events SET fanned_out = true WHERE seq = ANY(%s)",
                ([event["seq"] for event in events],),
            )
            return len(events)

        return await self._run(write, "fan_out")

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        where: list[str] = []
        params: list[Any] = []
        if name is not None:
            where.append("name = %s")
            params.append(name)
        if cursor is not None:
            where.append("seq < %s")
            params.append(seq_cursor(cursor))
        sql = f"SELECT {EVENTS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT %s"
        params.append(page_limit(limit) + 1)

        async def read(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(sql, params)
            return await cur.fetchall()

        rows = await self._run(read, "list_events", read_only=True, single=True)
        with self._decoding("list_events"):
            items = [event_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        # The same cursor as the SQLite store's: the last event's seq, as text.
        return Page(items, str(items[-1].seq) if more else None)


def seq_cursor(text: str) -> int:
    """The event ``seq`` a listing's cursor (or a part of one) holds.

    Raises:
        StoreArgumentError: ``text`` is not a cursor a page gave.
    """
    try:
        seq = int(text)
    except ValueError:
        pass
    else:
        if seq in BIGINT:
            return seq
    raise StoreArgumentError(f"bad cursor {text!r}: pass back a page's next_cursor")
