"""The PostgreSQL store's SELECT lists, one place per table.

psycopg hands each row over as a dict by column name (``dict_row``), which the
records of :mod:`runtime.store.rows` are built from; these lists name exactly the
columns each builder reads, from :mod:`runtime.store.rows`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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


def newest_first(
    select: str,
    order: str,
    where: list[str],
    params: list[Any],
    statuses: Sequence[str],
    limit: int,
) -> tuple[str, list[Any]]:
    """A page of ``select`` (``SELECT ... FROM table``) filtered by ``where`` and one of
    ``statuses``, in ``order`` (``ORDER BY ... LIMIT %s``), and its parameters.

    Each status is its own SELECT (``status = %s``, its own ordered walk of an index led
    by the status, or by a filter column and the status, stopped at the page), joined
    by UNION ALL and merged in order (a Merge Append): one ``status = ANY(...)`` is
    planned, once prepared, as a walk of the listing index that drops every row of
    another status (all of them, for a rare status), or as a sort of every match.
    """
    values = list(dict.fromkeys(statuses))
    if len(values) <= 1:
        if values:
            where, params = ["status = %s", *where], [values[0], *params]
        found = f" WHERE {' AND '.join(where)}" if where else ""
        return f"{select}{found}{order}", [*params, limit]
    arms: list[str] = []
    out: list[Any] = []
    for value in values:
        arm = " AND ".join(["status = %s", *where])
        arms.append(f"({select} WHERE {arm}{order})")
        out += [value, *params, limit]
    return " UNION ALL ".join(arms) + order, [*out, limit]
