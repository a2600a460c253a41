"""The SQLite store's event bus tables: the events outbox and the deliveries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.clock import from_text, to_text
from runtime.errors import DeliveryNotFoundError, StoreArgumentError
from runtime.ids import is_id, new_id
from runtime.models import DeliveryRecord, DeliveryStatus
from runtime.store.paging import page_limit, status_values
from runtime.store.records import DeliveryWork, NewEvent, Page, SubscriberRow
from runtime.store.rows import delivery_record, delivery_work, event_record, subscriber_row
from runtime.store.rules.routing import Route, route
from runtime.store.sqlite_core import SqliteCore, in_chunks, newest_first
from runtime.store.sqlite_tables import (
    CANDIDATES,
    DELIVERIES,
    DELIVERY_WORK,
    EVENTS,
    FAN_OUT,
    ROUTES,
    STAGED,
    SUBSCRIBERS,
)


def insert_event(db: sqlite3.Connection, event: NewEvent) -> tuple[str, bool]:
    """Insert ``event`` on a connection inside a transaction; (id, inserted now)."""
    cur = db.execute(
        "INSERT INTO events (id, name, data, metadata, idempotency_key, source_run_id, "
        "occurred_at, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (idempotency_key) DO NOTHING",
        (
            event.id,
            event.name,
            event.data,
            event.metadata,
            event.idempotency_key,
            event.source_run_id,
            to_text(event.occurred_at),
            to_text(event.available_at),
        ),
    )
    if cur.rowcount == 1:
        return event.id, True
    row = db.execute(
        "SELECT id FROM events WHERE idempotency_key = ?", (event.idempotency_key,)
    ).fetchone()
    return row[0], False


def publish_staged(db: sqlite3.Connection, run_id: str, now: datetime) -> int:
    """Move the events a run staged into the outbox (the run completed)."""
    rows = STAGED.all_named(
        db.execute(
            f"SELECT {STAGED.sql} FROM run_events WHERE run_id = ? ORDER BY step_seq, idx",
            (run_id,),
        )
    )
    stamp = to_text(now)
    db.executemany(
        "INSERT INTO events (id, name, data, metadata, source_run_id, occurred_at, available_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (new_id("evt"), row["name"], row["data"], row["metadata"], run_id, stamp, stamp)
            for row in rows
        ],
    )
    db.execute("DELETE FROM run_events WHERE run_id = ?", (run_id,))
    return len(rows)


class BusMixin(SqliteCore):
    """Events and deliveries (see :class:`runtime.store.base.Store`)."""

    async def emit(self, event: NewEvent) -> tuple[str, bool]:
        return await self._write(lambda db: insert_event(db, event))

    async def sync_subscribers(
        self,
        subscribers: Sequence[SubscriberRow],
        now: datetime,
        worker_id: str | None = None,
        live_since: datetime | None = None,
    ) -> None:
        stamp = to_text(now)
        live = to_text(live_since if live_since is not None else now)
        rows = [(s.id, json.dumps(list(s.patterns)), s.max_attempts, stamp) for s in subscribers]
        declared = [s.id for s in subscribers]

        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO subscribers (id, patterns, max_attempts, active, updated_at) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (id) DO UPDATE SET "
                "patterns = excluded.patterns, max_attempts = excluded.max_attempts, "
                "active = 1, updated_at = excluded.updated_at",
                rows,
            )
            # Declarations of workers that are gone (removed, or never beat again) lapse.
            db.execute(
                "DELETE FROM worker_subscribers WHERE worker_id NOT IN (SELECT id FROM workers)"
            )
            if worker_id is not None:
                db.execute("DELETE FROM worker_subscribers WHERE worker_id = ?", (worker_id,))
                db.executemany(
                    "INSERT INTO worker_subscribers (worker_id, subscriber_id) VALUES (?, ?)",
                    [(worker_id, name) for name in declared],
                )
            marks = ", ".join("?" * len(declared))
            not_here = f"AND id NOT IN ({marks}) " if declared else ""
            db.execute(
                f"UPDATE subscribers SET active = 0, updated_at = ? WHERE active = 1 {not_here}"
                "AND id NOT IN (SELECT d.subscriber_id FROM worker_subscribers d "
                "JOIN workers w ON w.id = d.worker_id WHERE w.heartbeat_at >= ? "
                "AND w.id IS NOT ?)",
                (stamp, *declared, live, worker_id),
            )

        await self._write(write)

    async def list_subscribers(self) -> list[SubscriberRow]:
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {SUBSCRIBERS.sql} FROM subscribers ORDER BY id"
            ).fetchall()
        )
        with self._decoding("list_subscribers"):
            return [subscriber_row(row) for row in SUBSCRIBERS.all_named(rows)]

    async def fan_out(self, now: datetime, limit: int) -> int:
        stamp = to_text(now)

        def write(db: sqlite3.Connection) -> int:
            events = FAN_OUT.all_named(
                db.execute(
                    f"SELECT {FAN_OUT.sql} FROM events WHERE fanned_out = 0 ORDER BY seq LIMIT ?",
                    (limit,),
                )
            )
            if not events:
                return 0
            subscribers = [
                Route(row["id"], tuple(json.loads(row["patterns"])), row["max_attempts"])
                for row in ROUTES.all_named(
                    db.execute(f"SELECT {ROUTES.sql} FROM subscribers WHERE active = 1")
                )
            ]
            routes: dict[str, list[Route]] = {}
            rows = []
            for event in events:
                seq, event_id, name = event["seq"], event["id"], event["name"]
                available_at = event["available_at"]
                found = routes.get(name)
                if found is None:
                    found = routes[name] = route(name, subscribers)
                for r in found:
                    delivery = (new_id("dlv"), event_id, seq, r.subscriber_id, r.max_attempts)
                    rows.append((*delivery, available_at, stamp, stamp))
            if rows:
                db.executemany(
                    "INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, "
                    "max_attempts, available_at, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?) "
                    "ON CONFLICT (event_id, subscriber_id) DO NOTHING",
                    rows,
                )
            db.execute(
                "UPDATE events SET fanned_out = 1 WHERE fanned_out = 0 AND seq <= ?",
                (events[-1]["seq"],),
            )
            return len(events)

        return await self._write(write)

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
        stamp, stale = to_text(now), to_text(stale_before)

        def write(db: sqlite3.Connection) -> list[Any]:
            found: list[Any] = []
            for chunk in in_chunks(subscriber_ids):
                # Due deliveries: the first few of each subscriber, merged in order.
                due = " UNION ALL ".join(
                    f"SELECT {CANDIDATES.sql} FROM deliveries "
                    "INDEXED BY deliveries_due WHERE status = 'pending' "
                    "AND subscriber_id = ? AND available_at <= ?"
                    for _ in chunk
                )
                params = [p for subscriber in chunk for p in (subscriber, stamp)]
                found += db.execute(
                    f"{due} ORDER BY available_at, event_seq LIMIT ?", [*params, limit]
                ).fetchall()
                # Deliveries in hand whose holder went quiet: all of them are live work.
                marks = ", ".join("?" * len(chunk))
                found += db.execute(
                    f"SELECT {CANDIDATES.sql} FROM deliveries "
                    "INDEXED BY deliveries_running WHERE status = 'running' "
                    f"AND subscriber_id IN ({marks}) AND (owner_id IS NULL OR owner_id NOT IN "
                    "(SELECT id FROM workers WHERE heartbeat_at >= ?))",
                    [*chunk, stale],
                ).fetchall()
            candidates = CANDIDATES.all_named(found)
            candidates.sort(key=lambda row: (row["available_at"], row["event_seq"]))
            ids = [row["id"] for row in candidates[:limit]]
            if not ids:
                return []
            id_marks = ", ".join("?" * len(ids))
            db.execute(
                "UPDATE deliveries SET owner_id = ?, "
                # A delivery retaken from a dead holder: that cut-off attempt does not count.
                "attempts = CASE WHEN status = 'running' THEN attempts ELSE attempts + 1 END, "
                "status = 'running', "
                f"updated_at = ? WHERE id IN ({id_marks})",
                (owner_id, stamp, *ids),
            )
            return db.execute(
                f"SELECT {DELIVERY_WORK.sql} FROM deliveries d JOIN events e "
                f"ON e.id = d.event_id WHERE d.id IN ({id_marks})",
                ids,
            ).fetchall()

        rows = await self._write(write)
        with self._decoding("claim_deliveries"):
            claimed = [delivery_work(row) for row in DELIVERY_WORK.all_named(rows)]
        return sorted(claimed, key=lambda work: work.event.seq)

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
        stamp = to_text(now)
        finished = stamp if status in (DeliveryStatus.DONE, DeliveryStatus.DEAD) else None
        due = to_text(available_at) if available_at is not None else None
        params = (status.value, error, due, stamp, finished, delivery_id, owner_id)

        def write(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "UPDATE deliveries SET status = ?, error = COALESCE(?, error), "
                    "available_at = COALESCE(?, available_at), updated_at = ?, "
                    "finished_at = ?, owner_id = NULL "
                    "WHERE id = ? AND owner_id = ? AND status = 'running'",
                    params,
                ).rowcount
                == 1
            )

        return await self._write(write)

    async def next_delivery_at(self, subscriber_ids: Sequence[str]) -> datetime | None:
        if not subscriber_ids:
            return None

        def read(db: sqlite3.Connection) -> list[str]:
            found = []
            for chunk in in_chunks(subscriber_ids):
                # MIN per subscriber reads one index entry; over an IN list, all of them.
                firsts = " UNION ALL ".join(
                    "SELECT MIN(available_at) AS due FROM deliveries INDEXED BY deliveries_due "
                    "WHERE status = 'pending' AND subscriber_id = ?"
                    for _ in chunk
                )
                (due,) = db.execute(f"SELECT MIN(due) FROM ({firsts})", chunk).fetchone()
                if due is not None:
                    found.append(due)
            return found

        found = await self._read(read)
        with self._decoding("next_delivery_at"):
            return from_text(min(found)) if found else None

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        where: list[str] = []
        params: list[Any] = []
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if cursor is not None:
            where.append("seq < ?")
            params.append(_int_cursor(cursor))
        sql = f"SELECT {EVENTS.sql} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(page_limit(limit) + 1)
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        with self._decoding("list_events"):
            items = [event_record(row) for row in EVENTS.all_named(rows[:limit])]
        more = len(rows) > limit
        return Page(items, str(items[-1].seq) if more else None)

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
            where.append("d.subscriber_id = ?")
            params.append(subscriber_id)
            # Every status, each walked on (subscriber_id, status, event_seq, id) and merged.
            statuses = statuses or [s.value for s in DeliveryStatus]
        if event_id is not None:
            where.append("d.event_seq = (SELECT seq FROM events WHERE id = ?)")
            params.append(event_id)
        if cursor is not None:
            seq, _, delivery_id = cursor.partition("|")
            if not is_id(delivery_id, "dlv"):
                raise StoreArgumentError(f"bad cursor {cursor!r}: pass back a page's next_cursor")
            where.append("(d.event_seq, d.id) < (?, ?)")
            params += [_int_cursor(seq), delivery_id]
        # Every column named (``AS``): a listing of several statuses is a UNION ALL, whose
        # ORDER BY must name result columns (``ORDER BY d.event_seq`` would be refused).
        select = f"SELECT {DELIVERIES.sql} FROM deliveries d JOIN events e ON e.id = d.event_id"
        sql, params = newest_first(select, where, params, statuses, "d.status")
        sql += " ORDER BY event_seq DESC, id DESC LIMIT ?"
        params.append(page_limit(limit) + 1)
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        with self._decoding("list_deliveries"):
            items = [delivery_record(row) for row in DELIVERIES.all_named(rows[:limit])]
        more = len(rows) > limit
        return Page(items, f"{items[-1].event_seq}|{items[-1].id}" if more else None)

    async def deliveries_of_events(self, event_seqs: Sequence[int]) -> list[DeliveryRecord]:
        seqs = [int(seq) for seq in event_seqs]
        if not seqs:
            return []
        marks = ", ".join("?" * len(seqs))
        sql = (
            f"SELECT {DELIVERIES.sql} FROM deliveries d JOIN events e ON e.id = d.event_id "
            f"WHERE d.event_seq IN ({marks}) ORDER BY d.event_seq DESC, d.id DESC"
        )
        rows = await self._read(lambda db: db.execute(sql, seqs).fetchall())
        with self._decoding("deliveries_of_events"):
            return [delivery_record(row) for row in DELIVERIES.all_named(rows)]

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord:
        sql = (
            f"SELECT {DELIVERIES.sql} FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.id = ?"
        )
        rows = await self._read(lambda db: db.execute(sql, (delivery_id,)).fetchall())
        if not rows:
            raise DeliveryNotFoundError(delivery_id)
        with self._decoding("get_delivery"):
            return delivery_record(DELIVERIES.all_named(rows)[0])

    async def redrive(self, delivery_ids: Sequence[str] | None, now: datetime) -> int:
        stamp = to_text(now)
        sql = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, available_at = ?, "
            "updated_at = ?, finished_at = NULL, owner_id = NULL WHERE status = 'dead'"
        )
        params: list[Any] = [stamp, stamp]
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            sql += f" AND id IN ({', '.join('?' * len(delivery_ids))})"
            params += list(delivery_ids)
        return await self._write(lambda db: db.execute(sql, params).rowcount)


def _int_cursor(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise StoreArgumentError(f"bad cursor {text!r}: pass back a page's next_cursor") from None
