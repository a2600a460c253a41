"""``runtime run`` (enqueue, --wait, --here) and ``runtime runs list|show``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import cli, cli_json


def test_run_here_prints_the_result_and_stores_the_run(project: Path) -> None:
    out = cli_json(project, "run", "hello", "--input", '{"name": "Ada"}', "--here")
    assert out["status"] == "completed"
    assert out["result"] == {"m": "Hello Ada"}
    assert (project / "app.db").exists()

    record = cli_json(project, "runs", "show", out["run_id"])
    assert [(s["name"], s["status"], s["attempts"]) for s in record["steps"]] == [
        ("greet", "completed", 1)
    ]
    table = cli(project, "runs", "show", out["run_id"])
    assert table.returncode == 0
    assert "greet" in table.stdout and "completed" in table.stdout
    human = cli(project, "run", "hello", "--input", '{"name": "Bo"}', "--here")
    assert human.returncode == 0
    assert "completed" in human.stdout and '"m": "Hello Bo"' in human.stdout


def test_run_here_with_a_transaction_id_returns_the_same_run(project: Path) -> None:
    first = cli_json(
        project, "run", "hello", "--input", '{"name": "A"}', "--transaction-id", "t-1", "--here"
    )
    second = cli_json(
        project, "run", "hello", "--input", '{"name": "B"}', "--transaction-id", "t-1", "--here"
    )
    assert second["run_id"] == first["run_id"]
    assert second["result"] == {"m": "Hello A"}


def test_a_failed_run_here_exits_1_and_is_listed(project: Path) -> None:
    done = cli(project, "run", "always-fails", "--here", "--json")
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["status"] == "failed"
    assert out["errors"][0]["type"] == "RuntimeError"
    assert out["errors"][0]["message"] == "kaboom"
    listed = cli_json(project, "runs", "list", "--status", "failed")
    assert [r["id"] for r in listed["runs"]] == [out["run_id"]]


def test_run_enqueues_and_prints_the_run_id(project: Path) -> None:
    done = cli(project, "run", "hello", "--input", '{"name": "Ada"}')
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert run_id.startswith("run_")
    record = cli_json(project, "runs", "show", run_id)
    assert (record["workflow"], record["status"], record["input"]) == (
        "hello",
        "pending",
        {"name": "Ada"},
    )
    again = cli_json(project, "run", "job-cleanup", "--idempotency-key", "k1")
    assert again["status"] == "pending"
    assert cli_json(project, "run", "job-cleanup", "--idempotency-key", "k1") == again


def test_run_wait_without_a_service_times_out_with_exit_1(project: Path) -> None:
    done = cli(
        project, "run", "hello", "--input", '{"name": "A"}', "--wait", "--timeout", "0.3", "--json"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "pending"
    assert "still pending after 0.3 s" in done.stderr


def test_an_unknown_workflow_exits_2(project: Path) -> None:
    for args in (["run", "nope"], ["run", "nope", "--here"]):
        done = cli(project, *args)
        assert done.returncode == 2, args
        assert "'nope'" in done.stderr
    assert cli_json(project, "runs", "list")["runs"] == []


def test_bad_input_json_exits_2(project: Path) -> None:
    done = cli(project, "run", "hello", "--input", "{nope")
    assert done.returncode == 2
    assert "--input is not valid JSON" in done.stderr


def test_runs_list_pages_with_a_cursor(project: Path) -> None:
    for name in ("a", "b", "c"):
        assert cli(project, "run", "hello", "--input", json.dumps({"name": name})).returncode == 0
    page = cli_json(project, "runs", "list", "--limit", "2")
    assert len(page["runs"]) == 2 and page["next_cursor"]
    rest = cli_json(project, "runs", "list", "--limit", "2", "--cursor", page["next_cursor"])
    assert len(rest["runs"]) == 1 and rest["next_cursor"] is None
    assert len({r["id"] for r in page["runs"] + rest["runs"]}) == 3
    table = cli(project, "runs", "list", "--limit", "2").stdout.splitlines()
    assert table[0].split() == ["RUN", "WORKFLOW", "STATUS", "CREATED", "ENDED", "ERROR"]
    assert len(table) == 4 and table[-1].startswith("more: --cursor")


def test_unknown_run_exits_3(project: Path) -> None:
    assert cli(project, "emit", "nothing.special").returncode == 0  # creates the database
    done = cli(project, "runs", "show", "run_nope")
    assert done.returncode == 3
    assert "no run with id 'run_nope'" in done.stderr
