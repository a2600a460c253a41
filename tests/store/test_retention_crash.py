"""A prune killed with SIGKILL mid-way leaves no half-removed run nor orphaned rows."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from runtime.store.sqlite import SqliteStore
from tests.store import retention_seed as seed

NOW = datetime.now(UTC)
RUNS = 3000
STEPS = 8

PRUNER = textwrap.dedent(
    """
    import sys, anyio
    from runtime.pruner import Retention, prune
    from runtime.clock import SystemClock
    from runtime.store.sqlite import SqliteStore

    async def main():
        store = await SqliteStore.open(sys.argv[1])
        print("pruning", flush=True)
        await prune(store, Retention.of("30d").cutoffs(SystemClock().now()), limit=3)
        print("done", flush=True)

    anyio.run(main)
    """
)


async def test_a_prune_killed_mid_way_leaves_every_run_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.db")
    await (await SqliteStore.open(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for n in range(RUNS):
        seed.run(db, "completed", NOW - timedelta(days=40, seconds=n), steps=STEPS, staged=1)
        seed.event(db, NOW - timedelta(days=40, seconds=n), [("done", NOW)] * 2)
    kept = seed.run(db, "completed", NOW - timedelta(days=1), steps=STEPS)
    db.execute("COMMIT")

    with anyio.fail_after(60):
        async with await anyio.open_process(
            [sys.executable, "-c", PRUNER, path], stdout=subprocess.PIPE, cwd=os.getcwd()
        ) as child:
            assert child.stdout is not None
            assert (await child.stdout.receive()).startswith(b"pruning")
            # Polls the file (another connection) until some batches have committed.
            while seed.count(db, "runs") > RUNS * 0.8:  # noqa: ASYNC110
                await anyio.sleep(0.005)
            child.send_signal(signal.SIGKILL)
            assert await child.wait() == -signal.SIGKILL

    left = seed.count(db, "runs")
    assert 1 < left < RUNS  # killed mid-way
    assert seed.orphans(db) == {"steps": 0, "staged_events": 0, "deliveries": 0}
    whole = db.execute(
        "SELECT COUNT(*) FROM runs WHERE (SELECT COUNT(*) FROM steps WHERE run_id = runs.id) = ?",
        (STEPS,),
    ).fetchone()[0]
    assert whole == left  # no run lost some of its steps
    assert seed.count(db, "run_events") == left - 1  # the recent run staged none
    assert db.execute("SELECT 1 FROM runs WHERE id = ?", (kept,)).fetchone()
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
