"""A temporary project (workflows, subscribers, jobs, runtime.toml) and the CLI as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HELLO = """
from runtime import StepResponse, create_step, create_workflow, transform

@create_step("greet")
async def greet(input):
    return StepResponse(f"Hello {input['name']}")

hello = create_workflow("hello", lambda input: transform({"m": greet(input)}, lambda d: d))
"""

FAILING = """
from runtime import create_step, create_workflow

@create_step("explode")
async def explode():
    raise RuntimeError("kaboom")

broken = create_workflow("always-fails", lambda: explode())
"""

NIGHTLY = """
from runtime import StepResponse, create_step, create_workflow

@create_step("tick")
async def tick():
    return StepResponse("ticked")

nightly = create_workflow("nightly", lambda: tick(), schedule="15 3 * * *")
"""

GREETER = """
from runtime.sdk.specs import SubscriberArgs, SubscriberConfig
from workflows.hello import hello

async def handler(args: SubscriberArgs) -> None:
    await hello(args.container).run(input={"name": args.event.data["first_name"]})

config = SubscriberConfig(event="customer.created", subscriber_id="greeter", max_attempts=2)
"""

AUDIT = """
from runtime.sdk.specs import SubscriberArgs, SubscriberConfig

async def handler(args: SubscriberArgs) -> None:
    pass

config = SubscriberConfig(event=["order.*", "customer.deleted"], timeout=5)
"""

REPORT_JOB = """
from runtime.sdk.specs import JobConfig

async def handler(container) -> None:
    pass

config = JobConfig(name="morning-report", schedule="0 9 * * *", timezone="America/New_York")
"""

CLEANUP_JOB = """
from runtime.sdk.specs import JobConfig

async def handler(container) -> None:
    pass

config = JobConfig(name="cleanup", schedule="30 7 * * *")
"""

FILES = {
    "workflows/hello.py": HELLO,
    "workflows/failing.py": FAILING,
    "workflows/nightly.py": NIGHTLY,
    "workflows/_helpers.py": "raise RuntimeError('never imported')\n",
    "subscribers/greeter.py": GREETER,
    "subscribers/audit.py": AUDIT,
    "jobs/morning_report.py": REPORT_JOB,
    "jobs/cleanup.py": CLEANUP_JOB,
    "runtime.toml": (
        '[runtime]\ndatabase = "sqlite:///app.db"\ntimezone = "Asia/Tokyo"\nshutdown_grace = 5\n'
    ),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return tmp_path


def command(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "runtime", "--project", str(project), *args]


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI on ``project`` and wait for it (bounded)."""
    return subprocess.run(command(project, *args), capture_output=True, text=True, timeout=60)


def cli_json(project: Path, *args: str) -> Any:
    """Run the CLI with ``--json``; it must exit 0."""
    done = cli(project, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
