"""Writing events inside another write's transaction: an emitted event, a run's staged ones."""

from __future__ import annotations

from datetime import datetime

from runtime.ids import new_id
from runtime.store.postgres.core import Cursor
from runtime.store.records import NewEvent

INSERT_EVENT = (
    "INSERT INTO events (id, name, data, metadata, idempotency_key, source_run_id, "
    "occurred_at, available_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)


async def insert_event(cur: Cursor, event: NewEvent) -> tuple[str, bool]:
    """Insert ``event`` in the cursor's transaction; (its id, whether it was stored now).

    With an idempotency key already used, the id is the earlier event's.
    """
    await cur.execute(
        INSERT_EVENT,
        (
            event.id,
            event.name,
            event.data,
            event.metadata,
            event.idempotency_key,
            event.source_run_id,
            event.occurred_at,
            event.available_at,
        ),
    )
    row = await cur.fetchone()
    if row is not None:
        return event.id, True
    await cur.execute("SELECT id FROM events WHERE idempotency_key = %s", (event.idempotency_key,))
    found = await cur.fetchone()
    assert found is not None  # the conflict was on this key
    return str(found["id"]), False


async def publish_staged(cur: Cursor, run_id: str, now: datetime) -> int:
    """Move the events a run staged into the outbox (the run completed); how many."""
    await cur.execute(
        "SELECT name, data, metadata FROM run_events WHERE run_id = %s ORDER BY step_seq, idx",
        (run_id,),
    )
    rows = await cur.fetchall()
    if rows:
        await cur.executemany(
            "INSERT INTO events (id, name, data, metadata, source_run_id, occurred_at, "
            "available_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (new_id("evt"), row["name"], row["data"], row["metadata"], run_id, now, now)
                for row in rows
            ],
        )
        await cur.execute("DELETE FROM run_events WHERE run_id = %s", (run_id,))
    return len(rows)
