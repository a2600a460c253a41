"""The command line, as a user runs it: a real process on a temporary project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "hello.py").write_text(HELLO)
    (tmp_path / "workflows" / "failing.py").write_text(FAILING)
    (tmp_path / "workflows" / "_helpers.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "runtime.toml").write_text('[runtime]\ndatabase = "sqlite:///app.db"\n')
    return tmp_path


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "--project", str(project), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_run_prints_the_result_and_stores_the_run(project: Path) -> None:
    done = cli(project, "run", "hello", "--input", '{"name": "Ada"}', "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "completed"
    assert out["result"] == {"m": "Hello Ada"}
    assert (project / "app.db").exists()

    shown = cli(project, "runs", "show", out["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert [(s["name"], s["status"], s["attempts"]) for s in record["steps"]] == [
        ("greet", "completed", 1)
    ]
    table = cli(project, "runs", "show", out["run_id"])
    assert "greet" in table.stdout and "completed" in table.stdout


def test_run_with_a_transaction_id_returns_the_same_run(project: Path) -> None:
    first = json.loads(cli(project, "run", "hello", "--input", '{"name": "A"}',
                           "--transaction-id", "t-1", "--json").stdout)  # fmt: skip
    second = json.loads(cli(project, "run", "hello", "--input", '{"name": "B"}',
                            "--transaction-id", "t-1", "--json").stdout)  # fmt: skip
    assert second["run_id"] == first["run_id"]
    assert second["result"] == {"m": "Hello A"}


def test_a_failed_run_exits_1_and_is_listed(project: Path) -> None:
    done = cli(project, "run", "always-fails", "--json")
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["status"] == "failed"
    assert out["errors"][0]["type"] == "RuntimeError"
    assert out["errors"][0]["message"] == "kaboom"

    listed = json.loads(cli(project, "runs", "list", "--status", "failed", "--json").stdout)
    assert [r["id"] for r in listed["runs"]] == [out["run_id"]]


def test_runs_list_pages_with_a_cursor(project: Path) -> None:
    for name in ("a", "b", "c"):
        assert cli(project, "run", "hello", "--input", json.dumps({"name": name})).returncode == 0
    page = json.loads(cli(project, "runs", "list", "--limit", "2", "--json").stdout)
    assert len(page["runs"]) == 2 and page["next_cursor"]
    rest = json.loads(
        cli(project, "runs", "list", "--limit", "2", "--cursor", page["next_cursor"],
            "--json").stdout
    )  # fmt: skip
    assert len(rest["runs"]) == 1 and rest["next_cursor"] is None
    ids = [r["id"] for r in page["runs"] + rest["runs"]]
    assert len(set(ids)) == 3


def test_unknown_run_exits_3(project: Path) -> None:
    done = cli(project, "runs", "show", "run_nope")
    assert done.returncode == 3
    assert "no run with id 'run_nope'" in done.stderr


def test_check_lists_workflows_and_skips_helpers(project: Path) -> None:
    done = cli(project, "check")
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout and "always-fails" in done.stdout
    listed = json.loads(cli(project, "workflows", "list", "--json").stdout)
    assert sorted(w["name"] for w in listed) == ["always-fails", "hello"]


def test_check_reports_a_broken_module_with_its_file(project: Path) -> None:
    (project / "workflows" / "bad.py").write_text("import nowhere_to_be_found\n")
    done = cli(project, "check")
    assert done.returncode == 1
    assert "bad.py" in done.stderr and "nowhere_to_be_found" in done.stderr


def test_bad_config_exits_2_naming_the_key(project: Path) -> None:
    (project / "runtime.toml").write_text('[runtime]\ndatabse = "x"\n')
    done = cli(project, "run", "hello")
    assert done.returncode == 2
    assert "unknown key 'databse'" in done.stderr


def test_bad_input_json_exits_2(project: Path) -> None:
    done = cli(project, "run", "hello", "--input", "{nope")
    assert done.returncode == 2
    assert "--input is not valid JSON" in done.stderr
