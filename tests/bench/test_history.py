"""``runtime bench --history N``: a grown file, every figure on it and on a fresh one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from runtime.bench.grow import GROWN_EVENT, GROWN_WORKFLOW, count_grown, exclusive, grow
from runtime.bench.history import BARS, FIGURES

GROWN = 200


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "runtime", "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)  # two files, each through every workload and four services
def test_history_measures_every_figure_on_a_grown_and_a_fresh_file(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    done = bench(
        "--history",
        str(GROWN),
        "--history-db",
        str(db),
        "--runs",
        "1",
        "--idle-seconds",
        "0.5",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["history_runs"] == GROWN
    assert result["growth"]["grown_runs"] == GROWN
    assert f"grown to {GROWN:,} runs" in done.stderr  # progress goes to stderr
    for side in ("aged", "fresh"):
        figures = result[side]
        assert set(FIGURES) <= set(figures), side
        for name in FIGURES:
            assert figures[name] >= 0, (side, name)
        for name in (
            "queue_latency_ms_p50",
            "events_per_s",
            "recovery_runs_per_s",
            "list_first_page_ms",
            "list_deep_page_ms",
            "startup_s",
            "sigterm_exit_s",
            "steps_per_s_sequential",
            "steps_per_s_concurrent",
            "wal_mb",
        ):
            assert figures[name] > 0, (side, name)
        # A step's checkpoint writes at least one page (and a frame header) to the WAL.
        assert figures["wal_bytes_per_step"] >= 4096 + 24, side
        assert figures["idle_cpu_pct"] < 100, side
    assert {b["figure"] for b in result["bars"]} == {bar[0] for bar in BARS}
    assert all(isinstance(b["pass"], bool) for b in result["bars"])
    assert result["ratio"]["startup_s"] == round(
        result["aged"]["startup_s"] / result["fresh"]["startup_s"], 3
    )

    # The grown file holds GROWN finished runs of 10 steps, one event and two finished
    # deliveries each (the measurement's own runs are of other workflows).
    with sqlite3.connect(db) as conn:
        statuses = conn.execute(
            "SELECT status, count(*) FROM runs WHERE workflow = ? GROUP BY status",
            (GROWN_WORKFLOW,),
        ).fetchall()
        steps = conn.execute(
            "SELECT count(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.workflow = ?",
            (GROWN_WORKFLOW,),
        ).fetchone()[0]
        deliveries = conn.execute(
            "SELECT d.status, count(*) FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE e.name = ? GROUP BY d.status",
            (GROWN_EVENT,),
        ).fetchall()
    assert statuses == [("completed", GROWN)]
    assert steps == 10 * GROWN
    assert deliveries == [("done", 2 * GROWN)]


def test_a_reused_history_file_is_grown_only_by_what_it_lacks(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    lines: list[str] = []
    first = anyio.run(grow, db, 30, lines.append)
    assert (first.runs, first.grown) == (30, 30)
    again = anyio.run(grow, db, 20, lines.append)
    assert (again.runs, again.grown) == (30, 0)
    assert "not grown" in lines[-1]
    further = anyio.run(grow, db, 45, lines.append)
    assert (further.runs, further.grown) == (45, 15)
    assert count_grown(db) == 45


def test_a_history_file_in_use_by_another_benchmark_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with exclusive(db):
        done = bench("--history", "10", "--history-db", str(db))
    assert done.returncode == 2, done.stderr
    assert "another 'runtime bench --history' is using it" in done.stderr
    assert not db.exists()  # refused before anything was grown


def test_bad_history_options_are_refused_with_exit_2(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database, " * 100)
    cases = [
        (("--history-db", str(tmp_path / "h.db")), "--history-db: only with --history N"),
        (("--history", "10", "--history-db", str(tmp_path / "missing" / "h.db")), "does not exist"),
        (("--history", "10", "--no-fast-path"), "--no-fast-path: not with --history"),
        (("--idle-seconds", "1"), "--idle-seconds: only with --history N"),
        (("--history", "0"), "--history"),
        (("--history", "10", "--history-db", str(not_a_db)), "not a runtime database"),
    ]
    for args, message in cases:
        done = bench(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr, args
    assert not Path(f"{not_a_db}.lock").exists()  # nothing made next to a file refused
