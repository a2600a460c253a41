"""``runtime run`` on durable workflows: versions (the newest by default) and input checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import cli, cli_json

SIGNUP = """
from pydantic import BaseModel
from runtime import WorkflowContext, workflow

class Signup(BaseModel):
    email: str
    plan: str = "free"

@workflow(name="signup", version="v2", input=Signup)
async def signup_v2(ctx: WorkflowContext[Signup]) -> dict:
    return {"version": "v2", "email": ctx.input.email, "plan": ctx.input.plan}

@workflow(name="signup", version="v10", input=Signup)
async def signup_v10(ctx: WorkflowContext[Signup]) -> dict:
    return {"version": "v10", "email": ctx.input.email, "plan": ctx.input.plan}
"""


@pytest.fixture
def durable(project: Path) -> Path:
    (project / "workflows" / "signup.py").write_text(SIGNUP)
    return project


def test_run_here_picks_the_newest_version_or_the_one_asked_for(durable: Path) -> None:
    newest = cli_json(durable, "run", "signup", "--input", '{"email": "a@b.c"}', "--here")
    assert newest["status"] == "completed"
    assert newest["result"] == {"version": "v10", "email": "a@b.c", "plan": "free"}
    older = cli_json(
        durable, "run", "signup", "--version", "v2", "--input", '{"email": "a@b.c"}', "--here"
    )
    assert older["result"]["version"] == "v2"
    versions = {r["id"]: r["version"] for r in cli_json(durable, "runs", "list")["runs"]}
    assert versions == {newest["run_id"]: "v10", older["run_id"]: "v2"}


def test_an_unknown_version_exits_2(durable: Path) -> None:
    for here in ([], ["--here"]):
        done = cli(durable, "run", "signup", "--version", "v3", "--input", '{"email": "x"}', *here)
        assert done.returncode == 2, done.stderr
        assert "unknown workflow 'signup' version 'v3'; known versions: [" in done.stderr
        assert "'v10'" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_workflow_is_one_message_enqueued_or_here(durable: Path) -> None:
    """Bug: ``run`` said "unknown workflow 'x'; the project has: [...]" and ``run --here``
    "workflow 'x' is not known to this runtime": one mistake, two messages. Now one."""
    said = []
    for here in ([], ["--here"]):
        done = cli(durable, "run", "signpu", "--input", "{}", *here)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        said.append([line for line in done.stderr.splitlines() if line.startswith("error: ")])
    assert said[0] == said[1]
    (line,) = said[0]
    assert line.startswith("error: unknown workflow 'signpu'; known workflows: [")
    assert "'signup'" in line


@pytest.mark.parametrize("here", [[], ["--here"]], ids=["enqueued", "here"])
def test_bad_durable_input_is_refused_and_no_run_is_stored(durable: Path, here: list[str]) -> None:
    assert cli(durable, "emit", "first").returncode == 0  # the database exists
    done = cli(durable, "run", "signup", "--input", '{"mail": "a@b.c"}', *here)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: invalid input for workflow 'signup'")
    assert "email" in done.stderr and "Field required" in done.stderr
    assert "Traceback" not in done.stderr
    assert cli_json(durable, "runs", "list")["runs"] == []


def test_an_enqueued_durable_run_stores_its_validated_input(durable: Path) -> None:
    out = cli_json(durable, "run", "signup", "--input", '{"email": "a@b.c"}')
    record = cli_json(durable, "runs", "show", out["run_id"])
    assert record["input"] == {"email": "a@b.c", "plan": "free"}
    assert (record["status"], record["version"]) == ("pending", None)  # resolved by the worker
    pinned = cli_json(durable, "run", "signup", "--version", "v2", "--input", '{"email": "x"}')
    assert cli_json(durable, "runs", "show", pinned["run_id"])["version"] == "v2"
