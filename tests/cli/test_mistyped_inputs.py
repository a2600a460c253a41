"""Mistakes a new user makes on the command line are refused, naming what is wrong:
a SQLite URL option that does not exist or has a bad value, a project folder that
does not exist, a configured folder that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import Client, ConfigError, Runtime, SyncClient
from tests.cli.conftest import cli


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("?synchronus=full", "unknown option 'synchronus' (did you mean 'synchronous'?)"),
        ("?foo=bar", "unknown option 'foo'"),
        ("?synchronous=maybe", "synchronous='maybe' is not one of normal, full, extra"),
        ("?fast_path=sometimes", "fast_path='sometimes' is not one of on, off"),
        ("?synchronous=", "synchronous='' is not one of"),
        ("?synchronous=full&synchronous=normal", "the option 'synchronous' is given twice"),
    ],
)
def test_a_bad_sqlite_url_option_exits_2_naming_it(project: Path, query: str, needle: str) -> None:
    # Failed before: the option was ignored and the run went ahead with synchronous=normal.
    url = f"sqlite:///{project / 'typo.db'}{query}"
    done = cli(project, "--database", url, "emit", "a.b")
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and "--database" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "typo.db").exists()


def test_known_sqlite_url_options_are_accepted_whatever_their_case(project: Path) -> None:
    url = f"sqlite:///{project / 'ok.db'}?synchronous=FULL&fast_path=off"
    done = cli(project, "--database", url, "emit", "a.b")
    assert done.returncode == 0, done.stderr


def test_a_bad_sqlite_url_option_is_refused_by_runtime_and_clients(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}?synchronus=full"
    for make in (Runtime, Client, SyncClient):
        with pytest.raises(
            ConfigError, match=r"unknown option 'synchronus'.*synchronous, fast_path"
        ):
            make(url)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["check"], ["emit", "a.b"], ["runs", "list"]])
def test_a_project_folder_that_does_not_exist_exits_2(tmp_path: Path, args: list[str]) -> None:
    # Failed before: check said "config: (defaults) ... problems: 0" (rc 0) and emit
    # created typo/runtime.db.
    typo = tmp_path / "typo"
    done = cli(typo, *args)
    assert done.returncode == 2, done.stdout
    assert done.stderr == f"error: --project {typo}: the project folder does not exist\n"
    assert not typo.exists()


def test_a_configured_folder_that_does_not_exist_is_named(project: Path) -> None:
    # Failed before: "workflows: 0 ... problems: 0".
    toml = project / "runtime.toml"
    toml.write_text(toml.read_text() + 'workflows_dir = "nope"\n')
    done = cli(project, "check")
    assert done.returncode == 2
    assert f"'workflows_dir': the folder {project / 'nope'} does not exist" in done.stderr
    assert str(toml) in done.stderr


def test_the_default_folders_may_be_absent(project: Path) -> None:
    for name in ("jobs", "subscribers"):
        for file in (project / name).iterdir():
            file.unlink()
        (project / name).rmdir()
    done = cli(project, "check")
    assert done.returncode == 0, done.stderr
    assert "jobs: 0" in done.stdout
