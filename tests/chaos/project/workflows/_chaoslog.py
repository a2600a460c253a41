"""The execution log of the chaos project: one JSON line per thing a step, compensation,
handler or job did, appended to ``execution.log`` in the project folder and fsynced
before the code goes on, so it tells what ran (and in which process) after SIGKILL.

Every line has ``pid`` and ``kind`` (``step``, ``comp``, ``handler``, ``job``, ``cron``)
and ``phase`` (``start``, ``done``, ``fail``); steps put a fresh ``nonce`` in their
``done`` line and in their output, so the campaign can tell which execution's result
the store kept.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import anyio

LOG = Path(__file__).resolve().parents[1] / "execution.log"

WORK_SECONDS = 0.02
"""At most this long per step or compensation: long enough for kills to land mid-step."""


def _append(line: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def record(**fields: Any) -> None:
    """Append one line; when this returns the line is on disk, whatever happens next.

    The write and its fsync (about 2 ms here) run in a worker thread, so the
    service's event loop goes on with its other runs meanwhile.
    """
    line = json.dumps({"pid": os.getpid(), **fields}, sort_keys=True) + "\n"
    await anyio.to_thread.run_sync(_append, line)


def nonce() -> str:
    """A fresh token naming one execution of a step."""
    return uuid.uuid4().hex


async def work() -> None:
    """Pretend to call something: a short random wait."""
    await anyio.sleep(random.uniform(0, WORK_SECONDS))


class ChaosFailure(Exception):
    """The error a step raises on purpose."""
