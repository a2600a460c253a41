"""The PostgreSQL store's SELECT lists, one place per table.

psycopg hands each row over as a dict by column name (``dict_row``), which the
records of :mod:`runtime.store.rows` are built from; these lists name exactly the
columns each builder reads, from :mod:`runtime.store.rows`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime.store.rows import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    WORKER_COLUMNS,
)


def columns(names: Iterable[str], table: str = "") -> str:
    """A SELECT list of ``names`` (qualified by ``table`` when given)."""
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{name}" for name in names)


RUNS = columns(RUN_COLUMNS)
STEPS = columns(STEP_COLUMNS)
WORKERS = columns(WORKER_COLUMNS)

ACTIVE = ("pending", "running", "sleeping", "compensating")
"""The statuses of a run someone may drive (a claim's)."""

QUEUED = "status IN ('pending', 'sleeping')"
"""The predicate of the ``runs_queue`` index."""
HELD = "status IN ('running', 'compensating')"
"""The predicate of the ``runs_held`` index."""
