"""The execution log of the multi-process project: one JSON line per thing a step did.

Appended to ``execution.log`` in the project folder (shared by the three processes) with
``O_APPEND`` in one ``write``, and fsynced before the step goes on, so it tells what ran,
how often and in which process, even after SIGKILL. Every line has ``pid``, ``run_id``,
``step`` and ``phase`` (``start``, ``done``, ``reached``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio

FOLDER = Path(__file__).resolve().parents[1]
LOG = FOLDER / "execution.log"


def _append(line: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def record(**fields: Any) -> None:
    """Append one line; when this returns the line is on disk, whatever happens next.

    The write and its fsync run in a worker thread, so the process's other runs go on.
    """
    line = json.dumps({"pid": os.getpid(), **fields}, sort_keys=True) + "\n"
    await anyio.to_thread.run_sync(_append, line)
