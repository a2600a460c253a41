"""Ctrl-C on ``runtime run WORKFLOW --here`` hands the run back and says how to finish it."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import cli, cli_json, command

SLOW = """
from pathlib import Path

import anyio
from runtime import create_step, create_workflow

MARKER = Path({marker!r})

@create_step("first")
async def first():
    return "one"

@create_step("wait-once")
async def wait_once():
    if not MARKER.exists():  # the first attempt waits until it is interrupted
        MARKER.write_text("")
        await anyio.sleep(3600)
    return "two"

slow = create_workflow("slow", lambda: [first(), wait_once()])
"""


def test_ctrl_c_on_run_here_prints_the_run_and_exits_130(project: Path) -> None:
    marker = project / "started"
    (project / "workflows" / "slow.py").write_text(SLOW.format(marker=str(marker)))
    here = subprocess.Popen(
        command(project, "run", "slow", "--here"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():  # bounded: the second step starts within seconds
            assert here.poll() is None, here.communicate()
            assert time.monotonic() < deadline, "the second step never started"
            time.sleep(0.05)
        here.send_signal(signal.SIGINT)
        _, err = here.communicate(timeout=30)
    finally:
        if here.poll() is None:
            here.kill()
    # Failed before: "Aborted!" and exit 1, the run not named.
    assert here.returncode == 130, err
    found = re.fullmatch(
        r"interrupted: run (run_\w+) \(slow\) stopped before its end; it is pending: a running "
        r"service resumes it, or run 'runtime run slow --here --idempotency-key (here_\w+)' "
        r"to finish it here\n",
        err,
    )
    assert found is not None, err
    run_id, key = found.groups()
    record = cli_json(project, "runs", "show", run_id)
    assert (record["status"], record["owner_id"]) == ("pending", None)
    assert [s["name"] for s in record["steps"]] == ["first"]  # its checkpoint kept

    again = cli(project, "run", "slow", "--here", "--idempotency-key", key, "--json")
    assert again.returncode == 0, again.stderr
    assert cli_json(project, "runs", "show", run_id)["status"] == "completed"
