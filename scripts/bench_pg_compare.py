"""``runtime bench --database`` and DBOS on one PostgreSQL, alternated, against issue 10's bars.

Not part of the test suite. Runs with the project's venv; DBOS runs in its own venv
(see ``scripts/bench_peer.py``)::

    .venv/bin/python scripts/bench_pg_compare.py postgresql://postgres@127.0.0.1:5432/test \\
        --rounds 3 --peer-python /work/dbos-venv/bin/python

Each round runs ``runtime bench --database URL --runs 1 --json`` and then
``bench_peer.py --database URL``, one after the other, so both see the same
machine; the table shows the medians over the rounds and each bar's verdict. Both
measure in scratch schemas they drop; the URL's password is never printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from runtime.config import redact

PEER = Path(__file__).resolve().parent / "bench_peer.py"

# (figure, "value" or "vs peer", ">=" or "<=", limit): issue 10 section 4.
BARS: tuple[tuple[str, str, str, float], ...] = (
    ("steps_per_s_sequential", "value", ">=", 1000.0),
    ("steps_per_s_sequential", "vs peer", ">=", 5.0),
    ("steps_per_s_concurrent", "value", ">=", 5000.0),
    ("steps_per_s_concurrent", "vs peer", ">=", 10.0),
    ("latency_ms_p50", "value", "<=", 3.0),
    ("queue_latency_ms_p50", "value", "<=", 5.0),
    ("two_process_ratio", "value", ">=", 1.3),
)
SHOWN = (
    "steps_per_s_sequential",
    "steps_per_s_concurrent",
    "latency_ms_p50",
    "queue_latency_ms_p50",
    "baseline_commit_us",
    "step_overhead_us",
    "step_overhead_vs_commit",
    "events_per_s",
    "durable_fn_steps_per_s",
    "one_process_steps_per_s",
    "two_process_steps_per_s",
    "two_process_ratio",
)


def _json_line(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} ... exited {done.returncode}:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-python", default="/work/dbos-venv/bin/python")
    args = parser.parse_args()
    ours: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    runtime = [sys.executable, "-m", "runtime", "bench", "--database", args.url, "--json"]
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds} on {redact(args.url)}", file=sys.stderr)
        ours.append(_json_line([*runtime, "--runs", "1"]))
        print(f"  runtime: {json.dumps({k: ours[-1][k] for k in SHOWN})}", file=sys.stderr)
        peers.append(_json_line([args.peer_python, str(PEER), "--database", args.url]))
        print(f"  peer:    {json.dumps(peers[-1])}", file=sys.stderr)
    us = {k: statistics.median(r[k] for r in ours) for k in SHOWN}
    peer = {k: statistics.median(r[k] for r in peers) for k in peers[0] if k in SHOWN}
    print(f"medians of {args.rounds} alternated rounds; peer: {peers[0]['peer']}")
    print(f"{'FIGURE':28} {'RUNTIME':>10} {'PEER':>10}")
    for name in SHOWN:
        theirs = f"{peer[name]:>10g}" if name in peer else f"{'-':>10}"
        print(f"{name:28} {us[name]:>10g} {theirs}")
    print(f"\n{'BAR':48} {'VALUE':>10}  VERDICT")
    for name, kind, sense, limit in BARS:
        value = us[name] / peer[name] if kind == "vs peer" else us[name]
        passed = value >= limit if sense == ">=" else value <= limit
        bar = f"{name} {sense} {limit:g}" + ("x peer" if kind == "vs peer" else "")
        print(f"{bar:48} {value:>10.3g}  {'pass' if passed else 'MISS'}")
    print(json.dumps({"runtime": us, "peer": peer, "rounds": {"runtime": ours, "peer": peers}}))


if __name__ == "__main__":
    main()
