"""A child process for the crash tests: an order saga that can be told where to stop and wait.

``tests/engine/test_crash.py`` starts this module with ``python -m tests.engine.crash_app``,
waits until it reports that it reached a chosen point, kills it with SIGKILL, and starts it
again. Everything the parent needs to judge the outcome is written to files, because a
killed process leaves nothing else behind:

- the execution log (``--log``): one JSON line per thing a step or compensation did, each
  written with ``flush`` and ``os.fsync`` so that it survives SIGKILL the instant it returns;
- the outcome (``--out``): written, atomically, only when the run reached a terminal status.

Modes:

- ``run``: call ``crash_saga(rt.container).run(transaction_id=...)``, as an application that
  restarts and retries its request would;
- ``wait``: never call ``run()``; only watch the store until the run with that transaction
  id ends, so whatever finishes it is the runtime's own recovery.

``--block KIND:NAME`` makes the process stop at that point, after logging ``reached``:
``before:STEP`` at the start of a step, before it does anything (the previous steps'
checkpoints are committed by then); ``step:STEP`` in the middle of a step, after it logged
``started``; ``comp:STEP`` in the middle of that step's compensation.
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

from runtime import (
    Container,
    Runtime,
    StepContext,
    StepResponse,
    WorkflowDefinition,
    create_step,
    create_workflow,
    transform,
)
from tests.helpers.crashkit import ExecutionLog

WORKFLOW = "crash-saga"
STEPS = ("reserve", "price", "charge", "ship")
"""The saga's steps, in the order they run."""

ORDER = {
    "order_id": "o-42",
    "items": [{"sku": "mug", "qty": 2, "price": 7}, {"sku": "tea", "qty": 3, "price": 4}],
}
"""The input every test run gets (plus ``fail_shipping``)."""

SERVICE = "execution_log"
"""The container name of the :class:`ExecutionLog`."""


# -- the saga ----------------------------------------------------------------
#
# Each step's output depends on the outputs of the steps before it, so a resumed
# run only gets the right result if it feeds later steps the stored outputs of
# the steps it did not run again.


def _reserve(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "reservation": f"res-{order['order_id']}",
        "items": order["items"],
    }


def _price(reserved: dict[str, Any]) -> dict[str, Any]:
    total = sum(item["qty"] * item["price"] for item in reserved["items"])
    return {"order_id": reserved["order_id"], "total": total}


def _charge(priced: dict[str, Any]) -> dict[str, Any]:
    return {"payment": f"pay-{priced['order_id']}-{priced['total']}", "amount": priced["total"]}


def _ship(data: dict[str, Any]) -> dict[str, Any]:
    return {"tracking": f"trk-{data['order']['order_id']}-{data['charge']['payment']}"}


SHIPPING_REFUSED = "carrier refused the parcel"


def _durable_step(name: str, compute: Any) -> Any:
    """A step that logs started/completed, and a compensation that logs the same."""

    async def invoke(data: Any, ctx: StepContext) -> StepResponse:
        log: ExecutionLog = ctx.container.resolve(SERVICE)
        await log.gate(f"before:{name}", ctx.run_id)
        log.write(event="started", kind="step", name=name, attempt=ctx.attempt, run_id=ctx.run_id)
        await log.gate(f"step:{name}", ctx.run_id)
        if name == "ship" and data["order"].get("fail_shipping"):
            log.write(event="failed", kind="step", name=name, run_id=ctx.run_id)
            return StepResponse.permanent_failure(
                SHIPPING_REFUSED, compensate_input={"cancel_label": data["order"]["order_id"]}
            )
        output = compute(data)
        log.write(event="completed", kind="step", name=name, output=output, run_id=ctx.run_id)
        return StepResponse(output, compensate_input={"undo": name, "output": output})

    async def compensate(undo: Any, ctx: StepContext) -> None:
        log: ExecutionLog = ctx.container.resolve(SERVICE)
        log.write(event="started", kind="comp", name=name, input=undo, run_id=ctx.run_id)
        await log.gate(f"comp:{name}", ctx.run_id)
        log.write(event="completed", kind="comp", name=name, input=undo, run_id=ctx.run_id)

    return create_step(name, invoke, compensate)


reserve = _durable_step("reserve", _reserve)
price = _durable_step("price", _price)
charge = _durable_step("charge", _charge)
ship = _durable_step("ship", _ship)


def _summary(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": values["reserved"]["order_id"],
        "reservation": values["reserved"]["reservation"],
        "total": values["priced"]["total"],
        "payment": values["charged"]["payment"],
        "tracking": values["shipped"]["tracking"],
    }


def _flow(order: Any) -> Any:
    reserved = reserve(order)
    priced = price(reserved)
    charged = charge(priced)
    shipped = ship({"order": order, "charge": charged})
    return transform(
        {"reserved": reserved, "priced": priced, "charged": charged, "shipped": shipped},
        _summary,
    )


crash_saga: WorkflowDefinition = create_workflow(WORKFLOW, _flow)


# -- the process ---------------------------------------------------------------


def _dump(value: Any) -> Any:
    """A pydantic record (or a list of them) as plain JSON data."""
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _write_outcome(path: Path, outcome: dict[str, Any]) -> None:
    # Written to a side file and renamed, so the parent never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


async def _wait_for_end(rt: Runtime, transaction_id: str) -> str:
    """The id of the run with ``transaction_id``, once it is terminal (recovery drives it)."""
    while True:
        page = await rt.workflows.list_runs(workflow=WORKFLOW, limit=100)
        for run in page.runs:
            if run.idempotency_key == transaction_id and run.status.terminal:
                return run.id
        await rt.clock.sleep(0.02)


async def main(args: argparse.Namespace) -> None:
    container = Container()
    container.register(SERVICE, ExecutionLog(Path(args.log), args.block))
    order = {**ORDER, "fail_shipping": args.fail_shipping}
    async with Runtime(
        database=args.database,
        workflows=[crash_saga],
        container=container,
    ) as rt:
        # Measured from the moment the runtime is up: how promptly the run is resumed.
        started = time.monotonic()
        outcome: dict[str, Any] = {"mode": args.mode, "pid": os.getpid()}
        if args.mode == "run":
            result = await crash_saga(rt.container).run(
                input=order, transaction_id=args.transaction_id, throw_on_error=False
            )
            run_id = result.run_id
            outcome["returned"] = {
                "status": result.status.value,
                "result": result.result,
                "run_id": result.run_id,
                "errors": _dump(result.errors),
            }
        else:
            with anyio.fail_after(args.timeout):
                run_id = await _wait_for_end(rt, args.transaction_id)
        outcome["elapsed"] = time.monotonic() - started
        record = await rt.workflows.get_run(run_id)
        outcome["run"] = _dump(record)
        outcome["runs_in_store"] = len((await rt.workflows.list_runs(limit=100)).runs)
        outcome["resumed_by_recovery"] = rt.worker.resumed
    _write_outcome(Path(args.out), outcome)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crash_app", description=__doc__)
    parser.add_argument(
        "--database", required=True, help="the database URL (sqlite:///... or postgresql://...)"
    )
    parser.add_argument("--log", required=True, help="the execution log (JSON lines)")
    parser.add_argument("--out", required=True, help="where the outcome JSON goes")
    parser.add_argument("--mode", choices=("run", "wait"), default="run")
    parser.add_argument("--block", default=None, help="KIND:NAME to stop at (see module doc)")
    parser.add_argument("--fail-shipping", action="store_true", help="make 'ship' fail for good")
    parser.add_argument("--transaction-id", default="crash-order-o-42")
    parser.add_argument("--timeout", type=float, default=20.0, help="wait mode's deadline (s)")
    args = parser.parse_args(argv)
    return args


if __name__ == "__main__":
    anyio.run(main, parse(sys.argv[1:]))
