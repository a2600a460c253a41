"""A child process for the durable crash tests: a ``@workflow`` run that a test kills and restarts.

``tests/engine/test_crash_durable.py`` starts this file with ``sys.executable``, kills it
with SIGKILL at a chosen moment (the run sleeping, paused, or in the middle of a step),
starts it again on the same database (SQLite or PostgreSQL), and judges the outcome
from files, because a killed process leaves nothing else behind:

- the execution log (``--log``): one JSON line per thing that happened (``ready`` when
  the runtime is up, ``started``/``completed`` per step execution, ``reached`` at the
  block point), each written with ``flush`` and ``os.fsync`` so it survives SIGKILL the
  instant it is written; every line carries the process id and the wall time;
- the outcome (``--out``): written, atomically, only once the run reached a terminal status.

Modes: ``start`` enqueues the run (``rt.workflows.run`` with a fixed idempotency key) and
waits for it to end; ``wait`` only waits for the one run in the database to end, so
whatever finishes it is the runtime's own recovery.

``--block step:NAME`` stops inside that step, after it logged ``started``: for good, or,
with ``--release FILE``, until the test creates ``FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from runtime import Container, Runtime, WorkflowContext, workflow
from tests.helpers import crashkit

WORKFLOW = "crash_durable"
IDEMPOTENCY_KEY = "crash-durable-o-7"
SERVICE = "execution_log"
STEPS = ("reserve", "price", "charge")
SLEEP = "cool_down"
"""The run: ``reserve``, ``price``, a durable sleep ``cool_down``, then ``charge``."""


class ExecutionLog(crashkit.ExecutionLog):
    """The shared log, with one helper for a step's execution."""

    async def step(self, name: str, run_id: str, compute: Any, value: Any) -> Any:
        """One step execution: log ``started``, maybe block, compute, log ``completed``."""
        self.write(event="started", name=name, run_id=run_id)
        await self.gate(f"step:{name}", run_id)
        output = compute(value)
        self.write(event="completed", name=name, output=output, run_id=run_id)
        return output


# -- the workflow --------------------------------------------------------------
#
# Each step's output depends on the one before, so a resumed run only gets the right
# result if it feeds later steps the stored outputs of the steps it did not run again.


class CrashInput(BaseModel):
    order_id: str
    nap: float


def _reserve(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "reservation": f"res-{order_id}", "items": [7, 7, 4, 4, 4]}


def _price(reserved: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": reserved["order_id"], "total": sum(reserved["items"])}


def _charge(priced: dict[str, Any]) -> dict[str, Any]:
    return {"payment": f"pay-{priced['order_id']}-{priced['total']}"}


@workflow(name=WORKFLOW, input=CrashInput)
async def crash_durable(ctx: WorkflowContext[CrashInput]) -> dict[str, Any]:
    log: ExecutionLog = ctx.container.resolve(SERVICE)
    reserved = await ctx.step(
        "reserve", log.step, "reserve", ctx.run_id, _reserve, ctx.input.order_id
    )
    priced = await ctx.step("price", log.step, "price", ctx.run_id, _price, reserved)
    await ctx.sleep(SLEEP, ctx.input.nap)
    charged = await ctx.step("charge", log.step, "charge", ctx.run_id, _charge, priced)
    return {"reservation": reserved["reservation"], "total": priced["total"], **charged}


# -- the process -----------------------------------------------------------------


def _write_outcome(path: Path, outcome: dict[str, Any]) -> None:
    # Written to a side file and renamed, so the parent never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


async def main(args: argparse.Namespace) -> None:
    log = ExecutionLog(Path(args.log), args.block, Path(args.release) if args.release else None)
    container = Container()
    container.register(SERVICE, log)
    async with Runtime(
        database=args.database, workflows=[crash_durable], container=container
    ) as rt:
        # The worker's first scan is done by now: what it takes at once, it has taken.
        started = time.monotonic()
        log.write(event="ready")
        if args.mode == "start":
            handle = await rt.workflows.run(
                WORKFLOW, {"order_id": "o-7", "nap": args.nap}, idempotency_key=IDEMPOTENCY_KEY
            )
            run_id = handle.run_id
        else:
            [run] = (await rt.workflows.list_runs(workflow=WORKFLOW)).runs
            run_id = run.id
        await rt.workflows.wait(run_id, args.timeout)
        record = await rt.workflows.get_run(run_id)
        outcome = {
            "mode": args.mode,
            "pid": os.getpid(),
            "elapsed": time.monotonic() - started,
            "run": record.model_dump(mode="json"),
            "runs_in_store": len((await rt.workflows.list_runs(limit=100)).runs),
            "resumed_by_recovery": rt.worker.resumed,
        }
    _write_outcome(Path(args.out), outcome)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crash_durable_app", description=__doc__)
    parser.add_argument(
        "--database", required=True, help="the database URL (sqlite:///... or postgresql://...)"
    )
    parser.add_argument("--log", required=True, help="the execution log (JSON lines)")
    parser.add_argument("--out", required=True, help="where the outcome JSON goes")
    parser.add_argument("--mode", choices=("start", "wait"), default="start")
    parser.add_argument("--block", default=None, help="step:NAME to stop in")
    parser.add_argument("--release", default=None, help="a file that ends the block")
    parser.add_argument("--nap", type=float, default=0.2, help="seconds of the durable sleep")
    parser.add_argument("--timeout", type=float, default=20.0, help="deadline for the run (s)")
    args = parser.parse_args(argv)
    return args


if __name__ == "__main__":
    anyio.run(main, parse(sys.argv[1:]))
