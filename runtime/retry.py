"""Retry timing: exponential backoff with jitter, capped."""

from __future__ import annotations

import random

MAX_DELAY = 3600.0
"""No single wait between attempts is longer than an hour."""

PARK_AFTER = 2.0
"""Waits at least this long park the run as ``sleeping`` (durably) instead of in memory."""


def backoff(failures: int, interval: float, cap: float = MAX_DELAY) -> float:
    """Seconds to wait after the ``failures``-th failed attempt.

    ``interval * 2**(failures-1)``, capped at ``cap`` (an hour by default), then "equal
    jitter": half of it fixed, the other half random, so a herd of runs that
    failed together does not retry together.
    """
    base = min(interval * 2 ** max(failures - 1, 0), cap)
    return float(base / 2 + random.uniform(0, base / 2))
