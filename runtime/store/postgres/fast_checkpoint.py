"""The checkpoint in one statement: what nearly every step writes, in one round trip.

A batch whose checkpoints are all progress (a step's record) or completions without
events of their own is written by one autocommit statement (:data:`STATEMENT`):

- ``lease`` locks the batch's runs (``FOR UPDATE``, in id order, as every batch does)
  and reads each one's owner, pending request, and whether its steps staged events;
- ``ok`` keeps the checkpoints whose run is still held by their writer (the others
  get ``LeaseLostError``, nothing written), except a completion whose run staged
  events: publishing them needs ids made here, so that one goes the long way
  (:func:`runtime.store.postgres.checkpoint._write`, a transaction of its own);
- ``done`` completes and releases the runs with no request pending; ``held`` only
  touches those with one (the driver obeys the request first, as on SQLite);
- ``written`` upserts every step record of the kept checkpoints;
- the result is each run's lease, whether it completed, and one ``NOTIFY`` when a run
  ended, sent at the statement's commit.

Measured on the development machine (a raw psycopg loop, medians of 500): a lone
progress checkpoint took about 350 µs this way and about 690 µs as ``BEGIN``, ``SELECT
... FOR UPDATE``, the writes and ``COMMIT``; through the store, with a generic plan
(``plan_cache_mode``, see ``connection.py``), about 600 µs, against about 500 µs for a
plain ``BEGIN; INSERT; COMMIT`` (docs/postgresql.md, "Performance").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from runtime.clock import to_text
from runtime.errors import LeaseLostError
from runtime.models import Control
from runtime.store.changes import Complete, Progress, RunChange
from runtime.store.postgres.core import Cursor
from runtime.store.records import StepWrite

STEP_FIELDS = (
    ("run_id", "text"),
    ("seq", "integer"),
    ("name", "text"),
    ("status", "text"),
    ("attempts", "integer"),
    ("output", "json"),
    ("compensate_input", "json"),
    ("error", "json"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("completed_order", "integer"),
    ("compensable", "boolean"),
)
"""A step record's columns and types, in the order :func:`parameters` lists them."""

_STEP_NAMES = ", ".join(name for name, _ in STEP_FIELDS)
# JSON documents travel as JSON strings inside the parameter, then are cast back.
_STEP_TYPES = ", ".join(
    f"{name} {'text' if kind == 'json' else kind}" for name, kind in STEP_FIELDS
)
_STEP_VALUES = ", ".join(
    f"s.{name}::json" if kind == "json" else f"s.{name}" for name, kind in STEP_FIELDS
)

# The batch travels as two JSON parameters (its checkpoints, its step records) rather
# than one array per column: three parameters to dump and bind instead of nineteen.
STATEMENT = (
    "WITH lease AS MATERIALIZED ("
    "SELECT id, owner_id, control, "
    "EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = runs.id) AS staged "
    "FROM runs WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE), "
    "item AS (SELECT * FROM json_to_recordset(%(items)s::json) AS i (run_id text, "
    "owner_id text, complete boolean, output text, ended_at timestamptz, now timestamptz)), "
    "ok AS MATERIALIZED (SELECT i.*, l.control FROM item i JOIN lease l "
    "ON l.id = i.run_id AND l.owner_id = i.owner_id WHERE NOT (i.complete AND l.staged)), "
    "done AS (UPDATE runs r SET updated_at = ok.now, status = 'completed', "
    "output = ok.output::json, ended_at = ok.ended_at, wake_at = NULL, owner_id = NULL, "
    "control = NULL FROM ok "
    "WHERE r.id = ok.run_id AND ok.complete AND ok.control IS NULL RETURNING r.id), "
    "held AS (UPDATE runs r SET updated_at = ok.now FROM ok "
    "WHERE r.id = ok.run_id AND ok.complete AND ok.control IS NOT NULL RETURNING r.id), "
    f"written AS (INSERT INTO steps ({_STEP_NAMES}) SELECT {_STEP_VALUES} "
    f"FROM json_to_recordset(%(steps)s::json) AS s ({_STEP_TYPES}) "
    "WHERE s.run_id IN (SELECT run_id FROM ok) "
    "ON CONFLICT (run_id, seq) DO UPDATE SET name = excluded.name, status = excluded.status, "
    "attempts = excluded.attempts, output = excluded.output, "
    "compensate_input = excluded.compensate_input, error = excluded.error, "
    "started_at = excluded.started_at, ended_at = excluded.ended_at, "
    "completed_order = excluded.completed_order, compensable = excluded.compensable) "
    "SELECT l.id, l.owner_id, l.control, l.staged, "
    "EXISTS (SELECT 1 FROM done d WHERE d.id = l.id) AS completed, "
    "CASE WHEN EXISTS (SELECT 1 FROM done) THEN pg_notify(%(channel)s, %(ended)s)::text END "
    "AS woken FROM lease l"
)


def fits(change: RunChange, steps: Sequence[StepWrite]) -> bool:
    """Whether a checkpoint can go in :data:`STATEMENT`: progress, or a completion with no
    events of its own, and no step staging events."""
    if any(step.events for step in steps):
        return False
    return isinstance(change, Progress) or (isinstance(change, Complete) and not change.events)


def parameters(items: list[Any], channel: str, ended: str) -> dict[str, Any]:
    """The statement's parameters for ``items`` (checkpoints that :func:`fits`)."""
    checkpoints = []
    steps = []
    for item in items:
        change = item.change
        complete = isinstance(change, Complete)
        checkpoints.append(
            {
                "run_id": item.run_id,
                "owner_id": item.owner_id,
                "complete": complete,
                "output": change.output if complete else None,
                "ended_at": to_text(change.ended_at) if complete else None,
                "now": to_text(item.now),
            }
        )
        for s in item.steps:
            steps.append(
                (
                    item.run_id,
                    s.seq,
                    s.name,
                    s.status.value,
                    s.attempts,
                    s.output,
                    s.compensate_input,
                    s.error,
                    s.started_at and to_text(s.started_at),
                    s.ended_at and to_text(s.ended_at),
                    s.completed_order,
                    s.compensable,
                )
            )
    names = [name for name, _ in STEP_FIELDS]
    return {
        "ids": sorted({item.run_id for item in items}),
        "items": json.dumps(checkpoints),
        "steps": json.dumps([dict(zip(names, row, strict=True)) for row in steps]),
        "channel": channel,
        "ended": ended,
    }


async def write(cur: Cursor, items: list[Any], channel: str, ended: str) -> list[Any]:
    """Write ``items`` (checkpoints that :func:`fits`) in one statement; each gets its
    outcome, except the completions whose run staged events: those are returned, to be
    written the long way."""
    await cur.execute(STATEMENT, parameters(items, channel, ended))
    leases = {row["id"]: row for row in await cur.fetchall()}
    longer = []
    for item in items:
        item.result, item.error = None, None
        lease = leases.get(item.run_id)
        if lease is None or lease["owner_id"] != item.owner_id:
            item.error = LeaseLostError(item.run_id, item.owner_id)
            continue
        control = None if lease["control"] is None else Control(lease["control"])
        if isinstance(item.change, Complete):
            if lease["staged"]:
                longer.append(item)
                continue
            # Completed and released; or, with a request pending, only the steps.
            item.result = None if lease["completed"] else control
        else:
            item.result = control
    return longer
