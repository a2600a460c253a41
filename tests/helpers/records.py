"""Store records for the store tests: runs, steps and workers as a backend receives them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from runtime import RunStatus, StepStatus
from runtime.ids import new_id
from runtime.store.base import Store
from runtime.store.records import NewRun, StepWrite, WorkerRow

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""The store tests' "now": every record is dated from it."""

WORKFLOW = "order-processing"


def new_run(
    *,
    workflow: str = WORKFLOW,
    key: str | None = None,
    status: RunStatus = RunStatus.PENDING,
    owner: str | None = None,
    available_at: datetime = T0,
    created_at: datetime = T0,
    input: object = None,
    run_id: str | None = None,
) -> NewRun:
    return NewRun(
        id=run_id or new_id("run"),
        workflow=workflow,
        version=None,
        kind="composition",
        idempotency_key=key,
        status=status,
        input=json.dumps(input),
        owner_id=owner,
        parent_run_id=None,
        available_at=available_at,
        created_at=created_at,
    )


async def create(store: Store, **kwargs: object) -> str:
    record, created = await store.create_run(new_run(**kwargs))  # type: ignore[arg-type]
    assert created
    return record.id


def step(seq: int, name: str, status: StepStatus = StepStatus.COMPLETED, **kw: object) -> StepWrite:
    return StepWrite(seq=seq, name=name, status=status, attempts=1, **kw)  # type: ignore[arg-type]


async def add_worker(store: Store, worker_id: str, heartbeat: datetime) -> None:
    await store.upsert_worker(WorkerRow(worker_id, "host-a", 4242, T0, heartbeat))
