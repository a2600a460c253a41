"""A dashboard's polling, as a process of its own: ``python poller.py URL RATE``.

Run as a script (not ``-m``), so it starts without importing the runtime package.

Prints :data:`READY`, then asks ``URL`` + each of :data:`PATHS` in turn, ``RATE``
requests per second, on a kept-alive connection (as a browser's tab does; a new one
when the server closed it), until SIGTERM; then prints one JSON
line: requests made, answered (2xx), refused (no server listening: the benchmark
starts and stops its runtimes meanwhile), failed (any other answer or error), and
the answered requests' median milliseconds. It runs outside the measured process,
as a browser would, so its own work is not counted against the engine (it still
shares the machine's CPUs).
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx

PATHS = ("/api/runs", "/api/health", "/")
"""The runs list (the API's and the dashboard's runs page) and the health check."""

TIMEOUT = 10.0

READY = "polling"
"""The line printed once the first request is about to go (the tally follows it)."""


def poll(base: str, rate: float, stop: threading.Event) -> dict[str, Any]:
    """Poll until ``stop`` is set; the tally."""
    interval = 1.0 / rate
    counts: Counter[str] = Counter()
    answered: list[float] = []
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        print(READY, flush=True)
        due = time.monotonic()
        turn = 0
        while not stop.is_set():
            path = PATHS[turn % len(PATHS)]
            turn += 1
            started = time.perf_counter()
            try:
                status = client.get(path).status_code
            except httpx.ConnectError:
                counts["refused"] += 1
            except httpx.HTTPError as exc:
                counts["failed"] += 1
                counts[f"failed: {type(exc).__name__}"] += 1
            else:
                if 200 <= status < 300:
                    counts["answered"] += 1
                    answered.append((time.perf_counter() - started) * 1000)
                else:
                    counts["failed"] += 1
                    counts[f"failed: {status}"] += 1
            counts["requests"] += 1
            due += interval
            stop.wait(max(due - time.monotonic(), 0.0))
    return {
        "requests": counts["requests"],
        "answered": counts["answered"],
        "refused": counts["refused"],
        "failed": counts["failed"],
        "failures": {k: v for k, v in counts.items() if k.startswith("failed: ")},
        "answered_ms_p50": round(statistics.median(answered), 2) if answered else None,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python poller.py URL RATE", file=sys.stderr)
        return 2
    base, rate = argv[0], float(argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps(poll(base, rate, stop)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
