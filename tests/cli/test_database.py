"""Database paths and files that cannot be used: one line naming the file, exit 2, nothing made.

Every case runs the real CLI in a process, so what a user sees is what is
checked: no traceback, no stray "Event loop is closed" from a thread, and a read
command never creates a file or a folder.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import main
from runtime.store import sqlite_core
from tests.cli.conftest import cli, cli_json, command

READS = (
    ["runs", "list"],
    ["runs", "show", "run_x"],
    ["runs", "pause", "run_x"],
    ["events", "list"],
    ["events", "dead"],
    ["events", "redrive", "--all"],
)
WRITES = (["emit", "order.placed"], ["run", "hello", "--input", '{"name": "Ada"}'])
SAMPLE = (*WRITES, READS[0], READS[2])
"""Every command opens the database one of two ways (creating it or not); these cover both."""


def assert_one_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 with a single ``error:`` line that holds ``words``, and nothing else."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def not_sqlite(project: Path) -> str:
    (project / "app.db").write_text("these are notes, not a database\n" * 200)
    return "is not a SQLite database"


def corrupt(project: Path) -> str:
    assert cli(project, "emit", "first").returncode == 0
    with (project / "app.db").open("r+b") as file:
        file.seek(100)  # past the header: the schema page's b-tree
        file.write(b"\xff" * 400)
    return "is corrupt"


def empty_sqlite_of_another_app(project: Path) -> str:
    db = sqlite3.connect(project / "app.db")
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()
    return "holds no runtime tables"


@pytest.mark.parametrize("make", [not_sqlite, corrupt], ids=["not-sqlite", "corrupt"])
def test_an_unusable_file_is_one_line_naming_it_for_every_command(
    project: Path, make: Callable[[Path], str]
) -> None:
    problem = make(project)
    before = (project / "app.db").read_bytes()
    for args in SAMPLE:
        done = cli(project, *args)
        assert_one_line(done, str(project / "app.db"), problem)
    assert (project / "app.db").read_bytes() == before  # nothing written to it


def test_a_sqlite_file_without_runtime_tables_is_not_changed_by_reads(project: Path) -> None:
    problem = empty_sqlite_of_another_app(project)
    before = (project / "app.db").read_bytes()
    for args in READS:
        assert_one_line(cli(project, *args), str(project / "app.db"), problem)
    assert (project / "app.db").read_bytes() == before
    assert not (project / "app.db-wal").exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite:////proc/runtime-test.db", ["/proc/runtime-test.db"]),
        ("sqlite:////proc/no-such-dir/x.db", ["/proc/no-such-dir"]),
        ("sqlite:///in-the-way/sub/x.db", ["in-the-way"]),
        ("sqlite:///a-folder", ["a-folder", "is a folder"]),
    ],
    ids=["proc-file", "proc-folder", "file-in-the-way", "a-folder"],
)
def test_a_path_that_cannot_hold_a_database_is_one_line(
    project: Path, url: str, words: list[str]
) -> None:
    (project / "in-the-way").write_text("a file, not a folder\n")
    (project / "a-folder").mkdir()
    for args in SAMPLE:
        done = cli(project, "--database", url, *args)
        assert_one_line(done, *words)


def test_a_file_in_the_way_of_the_folder_is_named(project: Path) -> None:
    (project / "in-the-way").write_text("a file, not a folder\n")
    url = "sqlite:///in-the-way/sub/x.db"
    done = cli(project, "--database", url, "emit", "order.placed")
    assert_one_line(done, f"{project / 'in-the-way'} is a file, not a folder")


def test_a_nul_byte_in_the_path_is_one_line(project: Path) -> None:
    toml = (project / "runtime.toml").read_text()
    (project / "runtime.toml").write_text(
        toml.replace('"sqlite:///app.db"', '"sqlite:///app\\u0000.db"')
    )
    for args in SAMPLE:
        assert_one_line(cli(project, *args), "NUL")
    assert sorted(p.name for p in project.iterdir() if "app" in p.name) == []


def test_read_commands_never_create_a_database_or_a_folder(project: Path) -> None:
    typo = project / "typo" / "app.db"
    for args in READS:
        done = cli(project, "--database", f"sqlite:///{typo}", *args)
        assert_one_line(done, f"no runtime database at {typo}")
        assert "check --database, RUNTIME_DATABASE or 'database' in runtime.toml" in done.stderr
    for args in (["check"], ["workflows", "list"], ["jobs", "list"]):
        assert cli(project, *args).returncode == 0, args
    listed = cli(project, "--database", f"sqlite:///{typo}", "jobs", "list")
    assert listed.returncode == 0  # the jobs come from the code; the stored columns are blank
    assert f"no runtime database at {typo}" in listed.stderr
    assert not typo.parent.exists()
    assert not (project / "app.db").exists()
    # A command that writes creates it.
    assert cli(project, "--database", f"sqlite:///{typo}", "emit", "first").returncode == 0
    assert cli_json(project, "--database", f"sqlite:///{typo}", "events", "list")["events"]


def test_check_lists_a_database_that_cannot_be_used(project: Path) -> None:
    not_sqlite(project)
    done = cli(project, "check")
    assert done.returncode == 1
    assert f"problem: database sqlite:///app.db: {project / 'app.db'} is not a SQLite" in (
        done.stderr
    )


def _capabilities_dropped() -> list[str]:
    """A prefix that runs a command without root's right to write any file, if need be."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    # util-linux (setpriv) is essential on Debian and .ci/run makes sure of it: as root,
    # without it no file is read-only, so the test would prove nothing.
    assert setpriv is not None, "running as root without setpriv (util-linux): install it"
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all"]


def test_a_read_only_file_is_refused_by_writers_and_read_by_readers(project: Path) -> None:
    assert cli(project, "emit", "first").returncode == 0
    (project / "app.db").chmod(0o444)
    prefix = _capabilities_dropped()

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *command(project, *args)], capture_output=True, text=True, timeout=60
        )

    for args in WRITES:
        assert_one_line(as_user(*args), str(project / "app.db"), "is read-only")
    listed = as_user("events", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "first" in listed.stdout


@pytest.fixture
def locked(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project's database, held exclusively by another connection (as by another app)."""
    assert cli(project, "emit", "first").returncode == 0
    holder = sqlite3.connect(project / "app.db", isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE held (x INTEGER)")
    # The store waits this long for a lock before it gives up (10 s in real use).
    monkeypatch.setattr(sqlite_core, "BUSY_TIMEOUT_MS", 50)
    try:
        yield project / "app.db"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_file_is_one_line_naming_it(locked: Path) -> None:
    runner = CliRunner()
    for args in (*READS, *WRITES):
        result = runner.invoke(main, ["--project", str(locked.parent), *args])
        assert result.exit_code == 2, (args, result.output)
        assert isinstance(result.exception, SystemExit)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.output
        assert str(locked) in lines[0] and "locked" in lines[0], lines[0]


def test_no_thread_outlives_a_failed_open(project: Path) -> None:
    """aiosqlite's thread must not report to a closed event loop after a failed connect."""
    script = (
        "import anyio\n"
        "from runtime import StoreError\n"
        "from runtime.store import open_store\n"
        "async def main():\n"
        "    try:\n"
        "        await open_store('sqlite:////proc/runtime-test.db')\n"
        "    except StoreError as exc:\n"
        "        print('refused:', exc)\n"
        "anyio.run(main)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.startswith("refused: cannot open the SQLite database /proc/runtime-test.db")
    assert done.stderr == ""
