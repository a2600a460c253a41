"""User code that runs at start-up and goes wrong: a problem of its file, never a traceback.

A ``setup`` hook that raises or takes the wrong arguments, and a module that
raises ``SystemExit`` or ``KeyboardInterrupt`` while it is imported, are listed
by ``runtime check`` (exit 1) and refused by ``runtime start`` (exit 2), each
with one message naming the file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import cli, command

SETUPS = {
    "raises": (
        "def setup(container):\n    raise RuntimeError('no credentials for the mailer')\n",
        ["RuntimeError: no credentials for the mailer", "services.py line 2"],
    ),
    "raises-async": (
        "async def setup(container):\n    raise KeyError('MAILER_URL')\n",
        ["KeyError: 'MAILER_URL'", "services.py line 2"],
    ),
    "exits": (
        "import sys\ndef setup(container):\n    sys.exit('bye')\n",
        ["SystemExit: bye", "services.py line 3"],
    ),
    "interrupted": (
        "def setup(container):\n    raise KeyboardInterrupt\n",
        ["KeyboardInterrupt", "services.py line 2"],
    ),
    "no-argument": (
        "def setup():\n    pass\n",
        ["setup() must take one argument, the container", "services.py line 1"],
    ),
    "two-arguments": (
        "def setup(container, settings):\n    pass\n",
        ["setup(container, settings) must take one argument", "services.py line 1"],
    ),
    "exits-on-import": (
        "import sys\nsys.exit(3)\ndef setup(container):\n    pass\n",
        ["cannot import 'services': SystemExit: 3", "services.py line 2"],
    ),
    "interrupted-on-import": (
        "raise KeyboardInterrupt\n",
        ["cannot import 'services': KeyboardInterrupt", "services.py line 1"],
    ),
}


def start(project: Path) -> subprocess.CompletedProcess[str]:
    """``runtime start``, which must refuse at once (bounded, in case it does not)."""
    return subprocess.run(command(project, "start"), capture_output=True, text=True, timeout=60)


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert lines, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)


@pytest.mark.parametrize("case", list(SETUPS))
def test_a_broken_setup_hook_is_a_problem_naming_the_files(project: Path, case: str) -> None:
    code, words = SETUPS[case]
    (project / "services.py").write_text(code)
    toml = project / "runtime.toml"
    toml.write_text(toml.read_text() + 'setup = "services:setup"\n')

    checked = cli(project, "check")
    assert checked.returncode == 1, checked.stderr
    assert "Traceback" not in checked.stderr
    (problem,) = [line for line in checked.stderr.splitlines() if line.startswith("problem: ")]
    assert f"{toml}: setup 'services:setup'" in problem
    for word in words:
        assert word in problem, (word, problem)

    refused = start(project)
    assert_refused(refused, f"{toml}: setup 'services:setup'", *words)
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


MODULE_EXITS = {
    "exit": ("import sys\nsys.exit(0)\n", "SystemExit: 0 (line 2)"),
    "exit-message": ("raise SystemExit('not today')\n", "SystemExit: not today (line 1)"),
    "interrupt": ("x = 1\nraise KeyboardInterrupt\n", "KeyboardInterrupt (line 2)"),
}


@pytest.mark.parametrize("folder", ["workflows", "subscribers", "jobs"])
@pytest.mark.parametrize("case", list(MODULE_EXITS))
def test_a_module_that_exits_while_imported_is_a_problem(
    project: Path, folder: str, case: str
) -> None:
    code, words = MODULE_EXITS[case]
    path = project / folder / "leaving.py"
    path.write_text(code)

    checked = cli(project, "check")
    assert checked.returncode == 1, (checked.stdout, checked.stderr)
    (problem,) = [line for line in checked.stderr.splitlines() if line.startswith("problem: ")]
    assert problem == f"problem: {path}: import failed: {words}"
    assert "workflows: 3" in checked.stdout  # the other modules were still read

    assert_refused(start(project), f"{path}: import failed: {words}")


def test_a_setup_hook_finds_the_runtime_s_logger_under_both_names(project: Path) -> None:
    """``runtime check`` runs the hook on a container holding what ``runtime start``'s
    holds before the hook runs: the logger as ``logger`` and as ``runtime.logger``."""
    (project / "services.py").write_text(
        "def setup(container):\n"
        "    container.resolve('runtime.logger').info('setting_up')\n"
        "    container.resolve('logger').info('set_up')\n"
    )
    toml = project / "runtime.toml"
    toml.write_text(toml.read_text() + 'setup = "services:setup"\n')
    checked = cli(project, "check")
    assert checked.returncode == 0, checked.stderr
    assert "problem: " not in checked.stderr
