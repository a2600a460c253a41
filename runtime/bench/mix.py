"""The runs ``runtime bench --api-runs`` seeds: a realistic mix, as rows in the stored forms.

The mix (:data:`STATUS_MIX`, per :data:`BLOCK` consecutive runs, spread through the
block): mostly completed, some failed (half of them rolled back, their completed steps
compensated), canceled, a few live (pending, running, sleeping, paused,
compensating) and one ``compensation_failed`` per block, the rare status. Each run
belongs to one of :data:`WORKFLOWS` (drawn at random with their weights) and has that
workflow's steps, as far as its status got. Each completed run published one event
(its two deliveries are made in SQL by :mod:`runtime.bench.seed`).

Rows are tuples in :data:`RUN_COLUMNS`, the store's `STEP_COLUMNS` and
:data:`EVENT_COLUMNS` order: times as aware datetimes, JSON documents as text, errors
as :class:`runtime.models.StepError` documents. Every seeded id has the shape
:func:`runtime.ids.new_id` makes (``run_bench<digits>``), so cursors and look-ups by
id work as on ids the runtime made.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.models import RunStatus, StepStatus
from runtime.store.rows import EVENT_COLUMNS as STORE_EVENT_COLUMNS

RUN_PREFIX = "run_bench"
EVENT_PREFIX = "evt_bench"
DELIVERY_PREFIX = "dlv_bench"
DIGITS = 21
"""Digits after ``run_bench``: the 26 characters of a :func:`runtime.ids.new_id` suffix."""

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""The first seeded run's creation time; each next one is :data:`SPACING` later."""
SPACING = timedelta(seconds=20)

BLOCK = 2000
"""The status mix repeats every ``BLOCK`` runs (each status at its count)."""

STATUS_MIX: dict[RunStatus, int] = {
    RunStatus.COMPLETED: 1761,
    RunStatus.FAILED: 120,
    RunStatus.CANCELED: 40,
    RunStatus.PENDING: 20,
    RunStatus.SLEEPING: 20,
    RunStatus.PAUSED: 20,
    RunStatus.RUNNING: 10,
    RunStatus.COMPENSATING: 8,
    RunStatus.COMPENSATION_FAILED: 1,
}
"""Runs of each status in every block of :data:`BLOCK`."""

RARE_STATUS = RunStatus.COMPENSATION_FAILED

WORKFLOWS: dict[str, tuple[float, int]] = {
    "order-processing": (0.40, 5),
    "send-invoice": (0.25, 3),
    "sync-inventory": (0.20, 8),
    "nightly-report": (0.10, 12),
    "refund": (0.05, 4),
}
"""Each seeded workflow: its share of the runs and its number of steps."""

SUBSCRIBERS = ("audit", "notify")
WORKER_ID = "wrk_bench000000000000000000000"
"""The owner of the seeded running and compensating runs: a worker long gone."""

_STRIDE = 1237
"""Coprime with :data:`BLOCK`: run ``i`` takes slot ``i * _STRIDE % BLOCK`` of the mix."""

_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/workflows/{wf}.py", line 42, in {step}\n'
    "    response = await client.post(url, json=payload)\n"
    '  File "/app/.venv/lib/python3.12/site-packages/httpx/_client.py", line 1859, in post\n'
    "    return await self.request(\n"
    "httpx.ReadTimeout: the upstream service did not answer within 10 s\n"
)

RUN_COLUMNS = (
    "id",
    "workflow",
    "version",
    "kind",
    "idempotency_key",
    "status",
    "input",
    "output",
    "error",
    "rollback_status",
    "control",
    "wake_at",
    "owner_id",
    "parent_run_id",
    "available_at",
    "created_at",
    "updated_at",
    "ended_at",
)
EVENT_COLUMNS = (*STORE_EVENT_COLUMNS[1:], "fanned_out")
"""The store's event columns but ``seq`` (the table numbers them), and ``fanned_out``."""


def _mix() -> list[RunStatus]:
    slots = [status for status, count in STATUS_MIX.items() for _ in range(count)]
    assert len(slots) == BLOCK
    return slots


_SLOTS = _mix()


def status_of(index: int) -> RunStatus:
    """The status of the seeded run number ``index`` (0-based)."""
    return _SLOTS[index * _STRIDE % BLOCK]


def expected_statuses(runs: int) -> Counter[RunStatus]:
    """How many of the first ``runs`` seeded runs have each status."""
    return Counter(status_of(i) for i in range(runs))


def run_id(index: int) -> str:
    return f"{RUN_PREFIX}{index:0{DIGITS}d}"


@dataclass
class Rows:
    """One batch of rows, in :data:`RUN_COLUMNS`, the store's `STEP_COLUMNS`,
    :data:`EVENT_COLUMNS` order (times as aware datetimes, JSON as text)."""

    runs: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)


def _error(step: str | None, kind: str, message: str, workflow: str) -> str:
    traceback = _TRACEBACK.format(wf=workflow.replace("-", "_"), step=step) if step else None
    return json.dumps({"step": step, "type": kind, "message": message, "traceback": traceback})


def rows(start: int, stop: int, rng: random.Random) -> Rows:
    """The rows of seeded runs ``start`` to ``stop - 1``."""
    names = list(WORKFLOWS)
    weights = [share for share, _ in WORKFLOWS.values()]
    batch = Rows()
    for index in range(start, stop):
        workflow = rng.choices(names, weights)[0]
        _run(batch, index, workflow, status_of(index), rng)
    return batch


def _run(batch: Rows, index: int, workflow: str, status: RunStatus, rng: random.Random) -> None:
    rid = run_id(index)
    created = EPOCH + index * SPACING
    total = WORKFLOWS[workflow][1]
    order = rng.randrange(10**6)
    data: dict[str, Any] = {"order_id": f"ord_{order:06d}", "customer": f"cus_{order % 9973:05d}"}
    data["amount"] = round(rng.uniform(5, 500), 2)
    data["items"] = [{"sku": f"SKU-{order % 997:03d}", "qty": 1 + order % 3}]
    input_text = json.dumps(data)
    step_time = timedelta(milliseconds=40 + rng.randrange(200))
    done = total  # steps that completed
    failing: str | None = None
    rollback = False
    if status in (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED, RunStatus.COMPENSATING):
        done = rng.randrange(total)
        failing = f"{workflow}-step-{done + 1}"
        rollback = status != RunStatus.FAILED or index % 2 == 0
    elif status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.SLEEPING):
        done = 1 + rng.randrange(total - 1)
    elif status == RunStatus.CANCELED:
        done = rng.randrange(total)
    elif status == RunStatus.PENDING:
        done = 0
    moment = created
    for seq in range(1, done + 1):
        ended = moment + step_time
        step_status = StepStatus.COMPLETED
        if rollback:
            step_status = StepStatus.COMPENSATED
            if status == RunStatus.COMPENSATION_FAILED and seq == done:
                step_status = StepStatus.COMPENSATION_FAILED
            elif status == RunStatus.COMPENSATING and seq == done:
                step_status = StepStatus.COMPENSATING
        batch.steps.append(
            (
                rid,
                seq,
                f"{workflow}-step-{seq}",
                step_status.value,
                1,
                json.dumps({"ok": True, "seq": seq}),
                input_text if seq == 1 else None,
                None,
                moment,
                ended,
                seq,
                seq == 1,
            )
        )
        moment = ended
    error: str | None = None
    if failing is not None:
        seq = done + 1
        error = _error(failing, "ReadTimeout", "the upstream service did not answer", workflow)
        batch.steps.append(
            (
                rid,
                seq,
                failing,
                StepStatus.FAILED.value,
                3,
                None,
                None,
                error,
                moment,
                moment + step_time,
                None,
                False,
            )
        )
        moment += step_time * 3
    elif status == RunStatus.CANCELED:
        error = json.dumps({"step": None, "type": "Canceled", "message": "canceled by an operator"})
    elif status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.SLEEPING):
        batch.steps.append(
            (
                rid,
                done + 1,
                f"{workflow}-step-{done + 1}",
                StepStatus.RUNNING.value if status == RunStatus.RUNNING else "completed",
                1,
                None if status == RunStatus.RUNNING else "{}",
                None,
                None,
                moment,
                None if status == RunStatus.RUNNING else moment + step_time,
                None if status == RunStatus.RUNNING else done + 1,
                False,
            )
        )
    ended_at = moment if status.terminal else None
    output = json.dumps({"order_id": data["order_id"], "status": "shipped"})
    available = created
    if status in (RunStatus.RUNNING, RunStatus.COMPENSATING):
        available = moment + timedelta(seconds=30)  # the lease a dead worker held
    elif status == RunStatus.SLEEPING:
        available = created + timedelta(days=365)
    owner = WORKER_ID if status in (RunStatus.RUNNING, RunStatus.COMPENSATING) else None
    batch.runs.append(
        (
            rid,
            workflow,
            "1",
            "composition",
            None,
            status.value,
            input_text,
            output if status == RunStatus.COMPLETED else None,
            error,
            None,
            None,
            created + timedelta(days=365) if status == RunStatus.SLEEPING else None,
            owner,
            None,
            available,
            created,
            ended_at or moment,
            ended_at,
        )
    )
    if status == RunStatus.COMPLETED:
        suffix = rid[len(RUN_PREFIX) :]
        batch.events.append(
            (
                f"{EVENT_PREFIX}{suffix}",
                f"{workflow}.completed",
                json.dumps({"run_id": rid, "order_id": data["order_id"]}),
                "{}",
                None,
                rid,
                moment,
                moment,
                True,
            )
        )
