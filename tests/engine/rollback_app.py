"""A child process for the rollback crash tests: a 5-step saga whose last step fails for good.

``tests/engine/test_crash_rollback.py`` forks this app (through
:mod:`tests.helpers.forkserver`), kills it with SIGKILL at a chosen point of the rollback,
and starts it again, once or several times, on the same database (either backend). The
saga exists in
both authoring styles, with the same steps and compensations:

- ``composition``: ``create_workflow`` over five ``create_step`` steps;
- ``durable``: a ``@workflow`` function calling ``ctx.step(name, fn, ..., compensate=...)``.

Steps ``reserve``, ``price``, ``charge`` and ``pack`` complete; ``ship`` fails for good
(``permanent_failure`` with a ``compensate_input``), so the rollback runs five
compensations: ``ship``'s own first, then ``pack``, ``charge``, ``price``, ``reserve``.

A third style, ``caught``, is the durable function with one difference: ``price`` fails
for good too, and the function catches that :class:`~runtime.StepFailed` and goes on, so
its rollback meets a step that failed itself (and is compensated) before steps that
completed after it.

The execution log (``--log``) gets one fsynced JSON line per step and compensation event,
so it survives SIGKILL. ``--block POINT`` stops the process there, after logging
``reached``, until it is killed:

- ``failed:NAME``: the checkpoint that records step NAME failed (and turns the run
  ``compensating``) has committed; no compensation has begun;
- ``before:NAME``: NAME's compensation was called (its ``compensating`` mark is
  committed) and has done nothing yet;
- ``inside:NAME``: the compensation logged ``started`` and has not finished;
- ``after:NAME``: the checkpoint that records NAME ``compensated`` has committed.

``failed:`` and ``after:`` are a hook on the store's ``checkpoint``, since no user code
runs at those moments.

Modes: ``start`` starts the run in the background (``rt.workflows.run``) and waits for
it to end; ``wait`` only waits for the one run in the database to end, so whatever
finishes it is the runtime's own recovery. The outcome (``--out``) is written,
atomically, once the run ended.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from runtime import (
    Container,
    Runtime,
    StepContext,
    StepFailed,
    StepResponse,
    WorkflowContext,
    WorkflowDefinition,
    create_step,
    create_workflow,
    workflow,
)
from runtime.models import Control, StepStatus
from runtime.store.changes import RunChange
from runtime.store.postgres.store import PostgresStore
from runtime.store.records import StepWrite
from runtime.store.sqlite import SqliteStore
from tests.helpers.crashkit import ExecutionLog

COMPOSITION = "rollback-saga"
DURABLE = "rollback_durable"
CAUGHT_DURABLE = "rollback_caught"
IDEMPOTENCY_KEY = "rollback-o-9"
SERVICE = "execution_log"
STEPS = ("reserve", "price", "charge", "pack", "ship")
"""The steps in the order they run; the last one fails for good."""

FAILING = STEPS[-1]
CAUGHT = "price"
"""The step that fails too in the ``caught`` style; the function catches its failure."""

REFUSED = "carrier refused the parcel"
CANCEL_LABEL = {"cancel_label": "o-9"}
"""The ``compensate_input`` a failing step hands its own compensation."""


def output_of(name: str, previous: Any) -> dict[str, Any]:
    """What step ``name`` returns: it depends on the step before, so replays must feed it."""
    return {"step": name, "after": previous}


# -- what the steps and compensations do (both styles) -------------------------


def _log(ctx: StepContext) -> ExecutionLog:
    log: ExecutionLog = ctx.container.resolve(SERVICE)
    return log


def _forward(
    log: ExecutionLog, name: str, run_id: str, previous: Any, fails: bool = False
) -> StepResponse:
    log.write(event="started", kind="step", name=name, run_id=run_id)
    if fails or name == FAILING:
        log.write(event="failed", kind="step", name=name, run_id=run_id)
        return StepResponse.permanent_failure(REFUSED, compensate_input=CANCEL_LABEL)
    output = output_of(name, previous)
    log.write(event="completed", kind="step", name=name, run_id=run_id)
    return StepResponse(output, compensate_input={"undo": name})


async def _compensate(name: str, undo: Any, ctx: StepContext) -> None:
    log = _log(ctx)
    await log.gate(f"before:{name}", ctx.run_id)
    log.write(event="started", kind="comp", name=name, input=undo, run_id=ctx.run_id)
    await log.gate(f"inside:{name}", ctx.run_id)
    log.write(event="completed", kind="comp", name=name, input=undo, run_id=ctx.run_id)


# -- composition style ---------------------------------------------------------------


def _composition_step(name: str) -> Any:
    async def invoke(previous: Any, ctx: StepContext) -> StepResponse:
        return _forward(_log(ctx), name, ctx.run_id, previous)

    async def compensate(undo: Any, ctx: StepContext) -> None:
        await _compensate(name, undo, ctx)

    return create_step(name, invoke, compensate)


_STEPS = [_composition_step(name) for name in STEPS]


def _flow(order: Any) -> Any:
    value = order["order_id"]
    for step in _STEPS:
        value = step(value)
    return value


rollback_saga: WorkflowDefinition = create_workflow(COMPOSITION, _flow)


# -- durable style -------------------------------------------------------------------


class OrderInput(BaseModel):
    order_id: str


def _durable_compensation(name: str) -> Any:
    async def compensate(undo: Any, ctx: StepContext) -> None:
        await _compensate(name, undo, ctx)

    return compensate


_COMPENSATIONS = {name: _durable_compensation(name) for name in STEPS}


@workflow(name=DURABLE, input=OrderInput)
async def rollback_durable(ctx: WorkflowContext[OrderInput]) -> Any:
    log: ExecutionLog = ctx.container.resolve(SERVICE)
    value: Any = ctx.input.order_id
    for name in STEPS:
        forward = functools.partial(_forward, log, name, ctx.run_id)
        value = await ctx.step(name, forward, value, compensate=_COMPENSATIONS[name])
    return value


@workflow(name=CAUGHT_DURABLE, input=OrderInput)
async def rollback_caught(ctx: WorkflowContext[OrderInput]) -> Any:
    log: ExecutionLog = ctx.container.resolve(SERVICE)
    value: Any = ctx.input.order_id
    for name in STEPS:
        forward = functools.partial(_forward, log, name, ctx.run_id, fails=name == CAUGHT)
        try:
            value = await ctx.step(name, forward, value, compensate=_COMPENSATIONS[name])
        except StepFailed:
            if name != CAUGHT:
                raise
    return value


WORKFLOWS = {
    "composition": (rollback_saga, COMPOSITION),
    "durable": (rollback_durable, DURABLE),
    "caught": (rollback_caught, CAUGHT_DURABLE),
}


# -- the process ---------------------------------------------------------------------


def gate_checkpoints(log: ExecutionLog, database: str) -> None:
    """Stop at ``failed:NAME``/``after:NAME`` once the checkpoint recording NAME ``failed``
    or ``compensated`` committed (in the store class of ``database``'s backend)."""
    store: type[SqliteStore | PostgresStore] = (
        PostgresStore if database.startswith("postgresql:") else SqliteStore
    )
    checkpoint = store.checkpoint

    async def gated(
        self: Any,
        run_id: str,
        owner_id: str,
        steps: Sequence[StepWrite],
        change: RunChange,
        now: datetime,
    ) -> Control | None:
        control = await checkpoint(self, run_id, owner_id, steps, change, now)
        for write in steps:
            if write.status is StepStatus.FAILED:
                await log.gate(f"failed:{write.name}", run_id)
            elif write.status is StepStatus.COMPENSATED:
                await log.gate(f"after:{write.name}", run_id)
        return control

    store.checkpoint = gated  # type: ignore[method-assign]


def _write_outcome(path: Path, outcome: dict[str, Any]) -> None:
    # Written to a side file and renamed, so the parent never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


async def main(args: argparse.Namespace) -> None:
    log = ExecutionLog(Path(args.log), args.block)
    if args.block is not None and args.block.startswith(("failed:", "after:")):
        gate_checkpoints(log, args.database)
    definition, name = WORKFLOWS[args.style]
    container = Container()
    container.register(SERVICE, log)
    async with Runtime(database=args.database, workflows=[definition], container=container) as rt:
        if args.mode == "start":
            handle = await rt.workflows.run(
                name, {"order_id": "o-9"}, idempotency_key=IDEMPOTENCY_KEY
            )
            run_id = handle.run_id
        else:
            [run] = (await rt.workflows.list_runs(workflow=name)).runs
            run_id = run.id
        await rt.workflows.wait(run_id, args.timeout)
        record = await rt.workflows.get_run(run_id)
        outcome = {
            "mode": args.mode,
            "pid": os.getpid(),
            "run": record.model_dump(mode="json"),
            "runs_in_store": len((await rt.workflows.list_runs(limit=100)).runs),
            "resumed_by_recovery": rt.worker.resumed,
        }
    _write_outcome(Path(args.out), outcome)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rollback_app", description=__doc__)
    parser.add_argument(
        "--database", required=True, help="the database URL (sqlite:///... or postgresql://...)"
    )
    parser.add_argument("--log", required=True, help="the execution log (JSON lines)")
    parser.add_argument("--out", required=True, help="where the outcome JSON goes")
    parser.add_argument("--style", choices=tuple(WORKFLOWS), required=True)
    parser.add_argument("--mode", choices=("start", "wait"), default="start")
    parser.add_argument("--block", default=None, help="KIND:NAME to stop at (see module doc)")
    parser.add_argument("--timeout", type=float, default=20.0, help="deadline for the run (s)")
    args = parser.parse_args(argv)
    return args


if __name__ == "__main__":
    import anyio

    anyio.run(main, parse(sys.argv[1:]))
