"""``runtime start`` as a real process: events emitted from another process run workflows."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli, cli_json, command

DEADLINE = 20.0
"""Seconds a test waits at most for the service to do something."""


@pytest.fixture
def service(project: Path) -> Iterator[subprocess.Popen[str]]:
    log = (project / "service.log").open("w")
    process = subprocess.Popen(
        command(project, "--log-format", "json", "start"),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def service_log(process: subprocess.Popen[str]) -> str:
    """What the service process wrote (the fixture sends it to the project's service.log)."""
    args = [str(a) for a in process.args]
    project = Path(args[args.index("--project") + 1])
    return (project / "service.log").read_text(errors="replace")


def until(probe: Callable[[], Any], what: str, process: subprocess.Popen[str]) -> Any:
    """Call ``probe`` until it returns something truthy (at most DEADLINE seconds)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the service exited with {process.returncode}:\n{service_log(process)}"
            )
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_emitted_event_runs_a_workflow_and_sigterm_stops_cleanly(
    project: Path, service: subprocess.Popen[str]
) -> None:
    emitted = cli(project, "emit", "customer.created", "--data", '{"first_name": "Grace"}')
    assert emitted.returncode == 0, emitted.stderr

    def completed_hello() -> list[dict[str, Any]]:
        runs = cli_json(project, "runs", "list", "--workflow", "hello")["runs"]
        return [r for r in runs if r["status"] == "completed"]

    (run,) = until(completed_hello, "the subscriber's run to complete", service)
    assert run["output"] == {"m": "Hello Grace"}
    assert run["idempotency_key"] == f"greeter:{emitted.stdout.strip()}:hello"

    # The read commands work while the service runs; the jobs' schedules are stored.
    jobs = {j["name"]: j for j in cli_json(project, "jobs", "list")}
    assert jobs["cleanup"]["executions"] == 0
    assert jobs["cleanup"]["stored_next_fire_at"] == jobs["cleanup"]["next"][0]
    schedules = cli_json(project, "schedules")
    assert len(schedules) == 3  # two jobs and the nightly workflow's schedule
    assert all(s["stored_next_fire_at"] == s["next"][0] for s in schedules), schedules

    # Runs started from another process are executed by the service's worker.
    done = cli(
        project,
        "run",
        "hello",
        "--input",
        '{"name": "Ada"}',
        "--wait",
        "--timeout",
        str(DEADLINE),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == {"m": "Hello Ada"}
    failed = cli(project, "run", "always-fails", "--wait", "--timeout", str(DEADLINE))
    assert failed.returncode == 1
    assert "failed" in failed.stdout and "RuntimeError: kaboom" in failed.stdout

    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=10) == 0
    log = (project / "service.log").read_text()
    assert "runtime_started" in log and "runtime_stopped" in log
    (started,) = [json.loads(line) for line in log.splitlines() if "runtime_started" in line]
    assert started["workflows"] == len(cli_json(project, "workflows", "list"))
    (failed_line,) = [json.loads(line) for line in log.splitlines() if '"run_failed"' in line]
    assert (failed_line["workflow"], failed_line["step"], failed_line["level"]) == (
        "always-fails",
        "explode",
        "warning",
    )
    assert failed_line["error"] == "RuntimeError: kaboom"


def test_start_refuses_a_project_with_problems(project: Path) -> None:
    (project / "subscribers" / "bad.py").write_text("import nowhere_to_be_found\n")
    done = cli(project, "start")
    assert done.returncode == 2
    assert "bad.py" in done.stderr and "nowhere_to_be_found" in done.stderr


def test_sigint_stops_the_service_cleanly(project: Path, service: subprocess.Popen[str]) -> None:
    """Ctrl-C in a terminal: the same graceful shutdown as SIGTERM, exit 0."""
    until(lambda: "runtime_started" in (project / "service.log").read_text(), "start", service)
    service.send_signal(signal.SIGINT)
    assert service.wait(timeout=10) == 0
    log = (project / "service.log").read_text()
    assert '"signal": "SIGINT"' in log and "runtime_stopped" in log
