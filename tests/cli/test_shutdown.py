"""``runtime start`` honours ``shutdown_grace`` even when a plain (sync) step is blocking."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import cli_json, command

DEADLINE = 20.0

SLEEPY = """
import time
from pathlib import Path
from runtime import create_step, create_workflow

def doze():
    Path("entered").open("a").write("x\\n")
    time.sleep(60)  # a blocking call that outlives the grace period by far
    return "rested"

sleepy = create_workflow("sleepy", lambda: create_step("doze", doze)())
"""


def test_a_blocking_sync_step_does_not_hold_the_process_past_shutdown_grace(
    project: Path,
) -> None:
    """Bug: after SIGINT the service logged ``shutdown_grace_expired`` and ``runtime_stopped``
    at the end of the grace period, but the process lived on until the sync step's thread
    returned (anyio's worker threads are joined at exit), and a second SIGINT printed a
    KeyboardInterrupt traceback from ``threading``. Now it exits 0 right after the grace
    period; the cut-off step runs again at the next start."""
    toml = (
        (project / "runtime.toml").read_text().replace("shutdown_grace = 5", "shutdown_grace = 1")
    )
    (project / "runtime.toml").write_text(toml)
    (project / "workflows" / "sleepy.py").write_text(SLEEPY)
    output = project / "service.log"
    with output.open("w") as log:
        service = subprocess.Popen(
            command(project, "--log-format", "json", "start"),
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        started = cli_json(project, "run", "sleepy")
        deadline = time.monotonic() + DEADLINE
        while not (project / "entered").exists():
            assert service.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        service.send_signal(signal.SIGINT)
        assert service.wait(timeout=15) == 0  # the step would block for 60 s
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(timeout=10)
    text = output.read_text()
    events = [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]
    assert "shutdown_grace_expired" in events and events[-1] == "runtime_stopped"
    assert "Traceback" not in text and "Exception ignored" not in text
    # The run was handed back, to run again at the next start.
    run = cli_json(project, "runs", "show", started["run_id"])
    assert run["status"] == "pending"
