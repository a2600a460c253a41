"""The SQLite store's SELECT lists, one place per table, and their rows decoded by column name.

Each :class:`Select` is a list of column names with the SQL that selects them: a
statement writes ``SELECT {RUNS.sql} FROM runs ...`` and decodes what it fetched
with ``RUNS.named(row)``, a dict by column name, which the records of
:mod:`runtime.store.rows` are built from. The names are never spelled twice, so a
column added to a list cannot shift the others. ``tests/store/test_sqlite_tables.py``
checks that SQLite names each result column as its :class:`Select` does.

A tuple zipped with its names rather than ``sqlite3.Row``: a record is built faster
from the dict, and the names never depend on how SQLite names a result column
(docs/architecture.md, "Rows", has the figures).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.store.rows import (
    DELIVERY_COLUMNS,
    DELIVERY_WORK_COLUMNS,
    EVENT_COLUMNS,
    FIRING_COLUMNS,
    RUN_COLUMNS,
    RUN_SNAPSHOT_COLUMNS,
    SCHEDULE_COLUMNS,
    SCHEDULE_PLAN_COLUMNS,
    SCHEDULE_SNAPSHOT_COLUMNS,
    STEP_COLUMNS,
    SUBSCRIBER_COLUMNS,
    WORKER_COLUMNS,
)


class Select:
    """Column names, the SELECT list that yields them in that order, and a row by name.

    A name found in ``sources`` is selected as ``<source> AS <name>``; any other, with
    a ``table`` alias, as ``<table>.<name> AS <name>`` (a join, or a compound whose
    ORDER BY must name result columns); else as the bare column.
    """

    __slots__ = ("names", "sql")

    def __init__(
        self, names: Sequence[str], *, table: str = "", sources: Mapping[str, str] | None = None
    ) -> None:
        self.names = tuple(names)
        sources = sources or {}
        self.sql = ", ".join(
            f"{sources[name]} AS {name}"
            if name in sources
            else f"{table}.{name} AS {name}"
            if table
            else name
            for name in self.names
        )

    def named(self, row: Sequence[Any]) -> dict[str, Any]:
        """``row``, fetched with this list, as its values by column name."""
        return dict(zip(self.names, row, strict=True))

    def all_named(self, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        """Each of ``rows`` as :meth:`named` gives it."""
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in rows]


# -- runs ---------------------------------------------------------------------

RUNS = Select(RUN_COLUMNS)
"""A whole run: :func:`runtime.store.rows.run_record`."""
LEASE = Select(("owner_id", "control"))
"""Who holds a run, and the operator's request pending on it (a checkpoint's check)."""
RUN_SNAPSHOT = Select(
    RUN_SNAPSHOT_COLUMNS,
    sources={
        "has_completed_steps": "EXISTS (SELECT 1 FROM steps "
        "WHERE run_id = runs.id AND status = 'completed')"
    },
)
"""What the state table reads of a run: :func:`runtime.store.rows.run_snapshot`."""

# -- steps --------------------------------------------------------------------

STEPS = Select(STEP_COLUMNS)
"""A whole step: :func:`runtime.store.rows.step_record`."""

# -- events and the steps' staged events ----------------------------------------

EVENTS = Select(EVENT_COLUMNS)
"""A whole event: :func:`runtime.store.rows.event_record`."""
FAN_OUT = Select(("seq", "id", "name", "available_at"))
"""What fanning an event out to its subscribers needs of it."""
STAGED = Select(("name", "data", "metadata"))
"""A staged event (``run_events``), as it is published."""

# -- deliveries -----------------------------------------------------------------

DELIVERIES = Select(DELIVERY_COLUMNS, table="d", sources={"event_name": "e.name"})
"""``deliveries d JOIN events e``: :func:`runtime.store.rows.delivery_record`."""
DELIVERY_WORK = Select(
    DELIVERY_WORK_COLUMNS,
    table="e",
    sources={
        "delivery_id": "d.id",
        "subscriber_id": "d.subscriber_id",
        "attempts": "d.attempts",
        "max_attempts": "d.max_attempts",
    },
)
"""``deliveries d JOIN events e``, claimed: :func:`runtime.store.rows.delivery_work`."""
CANDIDATES = Select(("id", "available_at", "event_seq"))
"""A delivery a claim may take, with what orders the candidates."""

# -- subscribers ----------------------------------------------------------------

SUBSCRIBERS = Select(SUBSCRIBER_COLUMNS)
"""A whole subscriber: :func:`runtime.store.rows.subscriber_row`."""
ROUTES = Select(("id", "patterns", "max_attempts"))
"""What routing an event to a subscriber needs of it."""

# -- schedules and their firings ------------------------------------------------

SCHEDULES = Select(SCHEDULE_COLUMNS)
"""A whole schedule: :func:`runtime.store.rows.schedule_record`."""
SCHEDULE_PLAN = Select(SCHEDULE_PLAN_COLUMNS)
"""A stored plan, which a declaration is compared with: :func:`runtime.store.rows.stored_plan`."""
SCHEDULE_SNAPSHOT = Select(
    SCHEDULE_SNAPSHOT_COLUMNS, table="s", sources={"last_run_status": "r.status"}
)
"""``schedules s LEFT JOIN runs r`` (its last run): :func:`runtime.store.rows.schedule_snapshot`."""
FIRINGS = Select(FIRING_COLUMNS)
"""A whole firing: :func:`runtime.store.rows.firing_record`."""

# -- workers ---------------------------------------------------------------------

WORKERS = Select(WORKER_COLUMNS)
"""A whole worker: :func:`runtime.store.rows.worker_row`."""
