"""``runtime prune``: removes what retention allows now, says what, and refuses bad input."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.inprocess import invoke, invoke_json
from tests.store import retention_seed as seed

NOW = datetime.now(UTC)


def history(project: Path) -> dict[str, str]:
    """A database in ``project`` with ended runs of several ages; their ids by name."""
    assert invoke(project, "emit", "a.b").code == 0  # creates app.db
    with sqlite3.connect(project / "app.db") as db:
        return {
            "completed 40d": seed.run(db, "completed", NOW - timedelta(days=40), steps=5),
            "completed 2d": seed.run(db, "completed", NOW - timedelta(days=2), steps=5),
            "failed 40d": seed.run(db, "failed", NOW - timedelta(days=40), steps=2),
            "running": seed.run(db, "running", None, created_at=NOW - timedelta(days=400)),
        }


def runs(project: Path) -> set[str]:
    with sqlite3.connect(project / "app.db") as db:
        return {run_id for (run_id,) in db.execute("SELECT id FROM runs")}


def test_prune_removes_what_the_projects_retention_allows(project: Path) -> None:
    ids = history(project)

    done = invoke(project, "prune")

    assert done.code == 0, done.stderr
    lines = dict(line.rsplit(None, 1) for line in done.stdout.splitlines()[1:])
    assert lines["runs"] == "1" and lines["steps"] == "5"
    assert runs(project) == {ids["completed 2d"], ids["failed 40d"], ids["running"]}


def test_dry_run_counts_and_removes_nothing(project: Path) -> None:
    ids = history(project)

    said = invoke_json(project, "prune", "--dry-run", "--older-than", "1d")

    assert said["dry_run"] is True
    assert said["would_remove"]["runs"] == 2 and said["would_remove"]["steps"] == 10
    assert runs(project) == set(ids.values())


def test_the_options_replace_the_settings(project: Path) -> None:
    ids = history(project)

    said = invoke_json(project, "prune", "--older-than", "0", "--failed-older-than", "30d")

    assert said["removed"]["runs"] == 1 and said["retention_s"] == 0
    assert said["failed_retention_s"] == 30 * 86400
    assert ids["failed 40d"] not in runs(project) and ids["completed 40d"] in runs(project)


def test_retention_off_prunes_nothing_and_says_so(project: Path) -> None:
    ids = history(project)
    with (project / "runtime.toml").open("a") as toml:
        toml.write("retention = 0\n")

    done = invoke(project, "prune")

    assert done.code == 0 and "nothing to prune" in done.stdout
    assert runs(project) == set(ids.values())


def test_a_bad_retention_in_the_project_exits_2_naming_the_key_and_the_file(
    project: Path,
) -> None:
    with (project / "runtime.toml").open("a") as toml:
        toml.write('retention = "a month"\n')

    done = invoke(project, "prune")

    assert done.code == 2
    assert "runtime.toml: 'retention' must be a period" in done.stderr
    assert "'a month'" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_variable_is_named(project: Path) -> None:
    done = invoke(project, "prune", env={"RUNTIME_FAILED_RETENTION": "-2d"})
    assert done.code == 2
    assert "environment variable RUNTIME_FAILED_RETENTION: 'failed_retention'" in done.stderr


def test_prune_never_creates_a_database(project: Path) -> None:
    done = invoke(project, "prune")
    assert done.code == 2 and "no runtime database" in done.stderr
    assert not (project / "app.db").exists()
