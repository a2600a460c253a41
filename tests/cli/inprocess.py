"""The CLI run in this process through click's CliRunner: fast enough for tables and properties.

``runtime`` configures structlog at its entry point; the configuration in force
before is put back afterwards, so other tests see no change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from click.testing import CliRunner

from runtime.cli import main


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a command did: its exit code, its output, and an exception that escaped (a bug)."""

    code: int
    stdout: str
    stderr: str
    escaped: BaseException | None


@contextmanager
def kept_logging() -> Iterator[None]:
    configured, config = structlog.is_configured(), structlog.get_config()
    try:
        yield
    finally:
        structlog.reset_defaults()
        if configured:
            structlog.configure(**config)


def invoke(
    project: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Outcome:
    """``runtime --project PROJECT ARGS...`` in this process (``env`` added to the environment)."""
    with kept_logging():
        runner = CliRunner(env=env)
        result = runner.invoke(main, ["--project", str(project), *args], input=stdin)
    escaped = None if isinstance(result.exception, SystemExit | None) else result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr, escaped)


def invoke_json(project: Path, *args: str, stdin: str | None = None) -> Any:
    """``invoke`` with ``--json``; it must exit 0."""
    done = invoke(project, *args, "--json", stdin=stdin)
    assert (done.code, done.escaped) == (0, None), done.stderr
    return json.loads(done.stdout)
