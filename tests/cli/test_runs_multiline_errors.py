"""An error of several lines (a pydantic validation error) keeps the tables whole:
``runs list`` shows its first line; ``runs show`` keeps the whole text."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import cli, cli_json

STRICT = """
from pydantic import BaseModel
from runtime import create_step, create_workflow

class Order(BaseModel):
    id: str
    total: int

@create_step("validate")
async def validate(input):
    return Order.model_validate(input).model_dump()

strict = create_workflow("strict", lambda input: validate(input))
"""


def test_a_multiline_error_shows_its_first_line_in_the_table(project: Path) -> None:
    (project / "workflows" / "strict.py").write_text(STRICT)
    failed = failed_run(project)
    cli(project, "run", "hello", "--input", '{"name": "Ada"}', "--here")
    lines = cli(project, "runs", "list").stdout.splitlines()
    # Failed before: the message's lines broke the table into extra rows.
    assert len(lines) == 3, lines
    (row,) = [line for line in lines if line.startswith(failed)]
    assert row.endswith("2 validation errors for Order ...")

    shown = cli(project, "runs", "show", failed).stdout
    assert "error     validate: ValidationError: 2 validation errors for Order" in shown
    assert "\n          total\n" in shown  # the rest, indented under it
    assert "\nstep 1 validate" not in shown  # the run's error, not repeated
    steps = shown.split("#  STEP")[1].split("\n\n")[0].splitlines()
    assert len(steps) == 2, steps  # the header's rest and one row


def failed_run(project: Path) -> str:
    """A run of ``strict`` that failed with a two-error ValidationError; its id."""
    done = cli(project, "run", "strict", "--input", '{"id": 1}', "--here", "--json")
    assert done.returncode == 1, done.stderr
    run_id: str = json.loads(done.stdout)["run_id"]
    assert cli_json(project, "runs", "show", run_id)["status"] == "failed"
    return run_id


LENIENT = """
from runtime import create_step, create_workflow

@create_step("check", continue_on_permanent_failure=True)
async def check():
    raise ValueError("two problems:\\n- no id\\n- no total")

lenient = create_workflow("lenient", lambda: check())
"""


def test_runs_show_gives_the_whole_text_of_a_steps_multiline_error(project: Path) -> None:
    (project / "workflows" / "lenient.py").write_text(LENIENT)
    done = cli(project, "run", "lenient", "--here", "--json")
    run_id = json.loads(done.stdout)["run_id"]
    shown = cli(project, "runs", "show", run_id).stdout
    (row,) = [line for line in shown.splitlines() if line.startswith("1  check")]
    assert row.endswith("ValueError: two problems: ...")
    assert "\nstep 1 check: ValueError:\n  two problems:\n  - no id\n  - no total\n" in shown
