"""The PostgreSQL store's SELECT lists, one place per table.

psycopg hands each row over as a dict by column name (``dict_row``), which the
records of :mod:`runtime.store.rows` are built from; these lists name exactly the
columns each builder reads, from :mod:`runtime.store.rows`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime.store.rows import (
    FIRING_COLUMNS,
    RUN_COLUMNS,
    RUN_SNAPSHOT_COLUMNS,
    SCHEDULE_COLUMNS,
    SCHEDULE_PLAN_COLUMNS,
    SCHEDULE_SNAPSHOT_COLUMNS,
    STEP_COLUMNS,
    WORKER_COLUMNS,
)


def columns(names: Iterable[str], table: str = "") -> str:
    """A SELECT list of ``names`` (qualified by ``table`` when given)."""
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{name}" for name in names)


RUNS = columns(RUN_COLUMNS)
STEPS = columns(STEP_COLUMNS)
STEP_ALIASES = ", ".join(f"s.{name} AS s_{name}" for name in STEP_COLUMNS)
"""A step's columns joined to its run's row, each named ``s_<column>``."""
WORKERS = columns(WORKER_COLUMNS)

ACTIVE = ("pending", "running", "sleeping", "compensating")
"""The statuses of a run someone may drive (a claim's)."""

QUEUED = "status IN ('pending', 'sleeping')"
"""The predicate of the ``runs_queue`` index."""
HELD = "status IN ('running', 'compensating')"
"""The predicate of the ``runs_held`` index."""

# -- schedules and the operator's state table --------------------------------------

SCHEDULES = columns(SCHEDULE_COLUMNS)
SCHEDULE_PLAN = columns(SCHEDULE_PLAN_COLUMNS)
FIRINGS = columns(FIRING_COLUMNS)
SCHEDULE_STATE = columns(
    (*(name for name in SCHEDULE_SNAPSHOT_COLUMNS if name != "last_run_status"), "last_run_id")
)
"""What the firing rule reads of a schedule's own row; the last run's status is read after
the row is locked (:mod:`runtime.store.postgres.schedules` says why)."""
RUN_STATE = columns(name for name in RUN_SNAPSHOT_COLUMNS if name != "has_completed_steps")
"""What the state table reads of a run's own row; whether a step completed is read after
the row is locked (:mod:`runtime.store.postgres.control` says why)."""
