"""The chaos campaign's load: another process that emits events and starts runs, steadily.

``python -m tests.chaos.load --database URL --seed S --rate R --out FILE`` does one
operation every ``1/R`` seconds through a :class:`~runtime.SyncClient` (as a Django or
Flask app would), until SIGTERM: emit ``order.placed`` (the ``orders`` subscriber runs
the composition saga) or ``user.signed_up`` (``signups`` runs the durable saga), or start
a run of either saga by name. Each operation has its own idempotency key and is tried
again with the same key until the database accepts it (the service may be holding it,
or dying), so nothing is sent twice and nothing is dropped. Each accepted operation is
appended to ``FILE`` as one JSON line with the id the database gave it.

The inputs decide, from the seeded RNG, which runs fail for good and where, which steps
fail their first attempt, and which durable runs take a durable sleep.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from runtime import SyncClient

SAGA = "chaos-saga"
DURABLE = "chaos_durable"

RETRY_PAUSE = 0.05
GIVE_UP_AFTER = 60.0
"""Seconds one operation may keep failing before the load gives up (exit 1)."""


def saga_input(rng: random.Random, key: str) -> dict[str, Any]:
    """A composition saga's order: 1 in 2 fails for good at step 2, 3 or 4."""
    return {
        "key": key,
        "fail_at": rng.choice([None, None, None, 2, 3, 4]),
        "fail_mode": rng.choice(["permanent", "raise"]),
        "flaky": rng.choice([None, None, 0, 1, 2, 3, 4]),
    }


def durable_input(rng: random.Random, key: str) -> dict[str, Any]:
    """A durable saga's input: 1 in 2 fails for good at step 2, 3 or 4."""
    return {
        "key": key,
        "fail_at": rng.choice([None, None, None, 2, 3, 4]),
        "nap_at": rng.choice([None, None, None, 1, 2]),
    }


def plan(rng: random.Random, seed: int, index: int) -> dict[str, Any]:
    """Operation number ``index``: what to send, under which idempotency key."""
    key = f"chaos-{seed}-{index}"
    roll = rng.random()
    if roll < 0.35:
        return {"op": "emit", "name": "order.placed", "key": key, "data": saga_input(rng, key)}
    if roll < 0.55:
        return {"op": "emit", "name": "user.signed_up", "key": key, "data": durable_input(rng, key)}
    if roll < 0.85:
        return {"op": "run", "name": SAGA, "key": key, "data": saga_input(rng, key)}
    return {"op": "run", "name": DURABLE, "key": key, "data": durable_input(rng, key)}


def send(client: SyncClient, op: dict[str, Any]) -> str:
    """Do one operation; the id of the stored event or run."""
    if op["op"] == "emit":
        return client.emit(op["name"], op["data"], idempotency_key=op["key"])
    return client.run(op["name"], op["data"], idempotency_key=op["key"]).run_id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.load", description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="operations per second")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    rng = random.Random(args.seed)
    interval = 1.0 / args.rate
    retries = 0
    with SyncClient(args.database) as client, args.out.open("a", encoding="utf-8") as out:
        index = 0
        due = time.monotonic()
        while not stopping:
            op = plan(rng, args.seed, index)
            first_try = time.monotonic()
            while True:
                try:
                    op["id"] = send(client, op)
                    break
                except Exception as exc:  # the database refused for now: same key again
                    retries += 1
                    if time.monotonic() - first_try > GIVE_UP_AFTER:
                        print(f"giving up on {op['key']}: {exc!r}", file=sys.stderr)
                        return 1
                    time.sleep(RETRY_PAUSE)
            out.write(json.dumps(op, sort_keys=True) + "\n")
            out.flush()
            index += 1
            due = max(due + interval, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))
    print(json.dumps({"operations": index, "retries": retries}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
