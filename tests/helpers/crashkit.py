"""What the SIGKILL crash tests share: the child's fsynced execution log, and child processes.

The child apps write an :class:`ExecutionLog` (one JSON line per step execution,
fsynced, so it survives SIGKILL); the tests start them as :class:`Child`
processes under a :func:`reaping` scope so that no child outlives its test, and
watch them with :func:`poll` and :func:`wait_reached` (the tests are synchronous: the
processes under test run their own event loops).
Tests that start many children fork them from a :class:`ForkServer` instead
(:class:`ForkedChild`, :class:`ForkedProcesses`): real processes too, without an
interpreter start and the imports each time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import pytest

from tests.helpers.databases import Database

ROOT = Path(__file__).resolve().parents[2]

POLL = 0.005
"""Seconds between two looks at a child's log or database while watching it."""

T = TypeVar("T")


class ExecutionLog:
    """Durable evidence of what ran: append-only JSON lines, fsynced one by one.

    Args:
        path: the log file (shared by every process of one scenario).
        block: the point to stop at, or ``None``.
        release: a file whose existence lets a blocked point go on; ``None``: never.
    """

    def __init__(self, path: Path, block: str | None, release: Path | None = None) -> None:
        self.path = path
        self.block = block
        self.release = release

    def write(self, **fields: Any) -> None:
        """Append one line; when this returns the line is on disk, whatever happens next."""
        line = json.dumps({"pid": os.getpid(), "at": time.time(), **fields}, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def gate(self, point: str, run_id: str) -> None:
        """Stop here if ``point`` is the block point: until released, or for good."""
        if point != self.block:
            return
        self.write(event="reached", point=point, run_id=run_id)
        release = self.release
        if release is None:
            await anyio.sleep_forever()
            return
        while not release.exists():  # noqa: ASYNC110 - another process creates it
            await anyio.sleep(0.01)
        self.write(event="released", point=point, run_id=run_id)


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every line of an execution log (none cut short: the child fsyncs whole lines)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class Child:
    """A running child app process, its outcome file and its stderr file."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ended(self) -> str:
        """How the process ended, for a failure message."""
        return f"exited ({self.proc.returncode})"

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_outcome(self, timeout: float) -> dict[str, Any]:
        """The outcome the child wrote, once it exited cleanly within ``timeout`` seconds."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"child did not finish within {timeout}s; stderr:\n{self.stderr()}")
        assert code == 0, f"child exited with {code}; stderr:\n{self.stderr()}"
        outcome: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return outcome

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released, no final write."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        assert self.proc.returncode == -signal.SIGKILL
        assert not self.out.exists(), "a killed child must not have written an outcome"


class Watched(Protocol):
    """A child process as :func:`poll` watches it: a :class:`Child` or a :class:`ForkedChild`."""

    @property
    def pid(self) -> int: ...

    def alive(self) -> bool: ...

    def ended(self) -> str: ...

    def stderr(self) -> str: ...


def poll(
    what: str,
    condition: Callable[[], T | None],
    child: Watched,
    timeout: float,
    log: Path | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy (that), while ``child`` lives.

    Fails the test, naming ``what``, when the child ends first or ``timeout`` seconds pass;
    with ``log``, the failure lists what the execution log holds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if not child.alive():
            pytest.fail(f"child {child.ended()} before {what}{_summary(log)}\n{child.stderr()}")
        time.sleep(POLL)
    pytest.fail(f"not {what} within {timeout}s{_summary(log)}\n{child.stderr()}")


def wait_reached(log: Path, child: Watched, point: str, timeout: float) -> dict[str, Any]:
    """Poll the execution log until ``child`` reports it stopped at ``point``; that line."""

    def reached() -> dict[str, Any] | None:
        for line in read_log(log):
            if line["event"] == "reached" and line["pid"] == child.pid:
                assert line["point"] == point
                return line
        return None

    return poll(f"reaching {point}", reached, child, timeout, log)


def _summary(log: Path | None) -> str:
    if log is None:
        return ":"
    lines = [(e.get("kind"), e.get("name"), e["event"]) for e in read_log(log)]
    return f"; log: {lines}"


@dataclass
class ScenarioFiles:
    """What one scenario's processes share: a database (either backend) and an execution log."""

    dir: Path
    database: Database

    @property
    def log(self) -> Path:
        return self.dir / "execution.log"


@dataclass
class Processes(ScenarioFiles):
    """One scenario's files and its child processes."""

    children: list[subprocess.Popen[bytes]]

    def start(self, name: str, argv: list[str]) -> Child:
        """Start ``argv`` as process ``name`` (its outcome and stderr files are named after it).

        ``argv`` is completed with ``--database``, ``--log`` and ``--out``.
        """
        out, err = self.dir / f"{name}.json", self.dir / f"{name}.stderr"
        argv = [*argv, "--database", self.database.url, "--log", str(self.log), "--out", str(out)]
        # stderr to a file, not a pipe: a full pipe nobody reads would block the child.
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        self.children.append(proc)
        return Child(proc, out, err)


@contextlib.contextmanager
def reaping(processes: Processes) -> Iterator[Processes]:
    """Whatever fails, no child outlives its test."""
    try:
        yield processes
    finally:
        for proc in processes.children:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


# -- forked children (tests/helpers/forkserver.py) -----------------------------------


class ForkServer:
    """A :mod:`tests.helpers.forkserver` process for one child app: fast starts of real processes.

    Args:
        module: the child app's module (it has ``main`` and ``parse``).
    """

    def __init__(self, module: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.forkserver", module],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def fork(self, argv: list[str], err: Path, status: Path) -> int:
        """Start a child running the app with ``argv``; its pid."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is not None:
            pytest.fail(f"the fork server exited with {self.proc.returncode}")
        request = {"argv": argv, "err": str(err), "status": str(status)}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        """Stop the server; it SIGKILLs and reaps the children still running."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@dataclass
class ForkedChild:
    """A child app process forked by a :class:`ForkServer` (with :class:`Child`'s interface)."""

    pid: int
    out: Path
    err: Path
    status_file: Path

    def status(self) -> dict[str, Any] | None:
        """How the process ended (``exit``, ``signal``), or ``None`` while it runs."""
        if not self.status_file.exists():
            return None
        status: dict[str, Any] = json.loads(self.status_file.read_text(encoding="utf-8"))
        return status

    def alive(self) -> bool:
        return self.status() is None

    def ended(self) -> str:
        """How the process ended, for a failure message."""
        return f"ended ({self.status()})"

    def stderr(self) -> str:
        if not self.err.exists():
            return ""
        return self.err.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_ended(self, timeout: float) -> dict[str, Any] | None:
        """Poll until the process ended (its status), for at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (status := self.status()) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return status

    def wait_outcome(self, timeout: float) -> dict[str, Any]:
        """The outcome the child wrote, once it exited cleanly within ``timeout`` seconds."""
        status = self.wait_ended(timeout)
        if status is None:
            pytest.fail(f"child did not finish within {timeout}s; stderr:\n{self.stderr()}")
        assert status["exit"] == 0, f"child ended {status}; stderr:\n{self.stderr()}"
        outcome: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return outcome

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released, no final write."""
        if self.alive():
            # Gone already when it ended on its own and was reaped since: the status says so.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        status = self.wait_ended(5.0)
        assert status is not None and status["signal"] == signal.SIGKILL, status
        assert not self.out.exists(), "a killed child must not have written an outcome"


@dataclass
class ForkedProcesses(ScenarioFiles):
    """One scenario's files and its forked children."""

    server: ForkServer
    children: list[ForkedChild]

    def start(self, name: str, argv: list[str]) -> ForkedChild:
        """Fork the app with ``argv`` as process ``name`` (plus ``--database/--log/--out``)."""
        out, err = self.dir / f"{name}.json", self.dir / f"{name}.stderr"
        argv = [*argv, "--database", self.database.url, "--log", str(self.log), "--out", str(out)]
        status = self.dir / f"{name}.status"
        child = ForkedChild(self.server.fork(argv, err, status), out, err, status)
        self.children.append(child)
        return child

    def kill_all(self) -> None:
        """Whatever failed, no child outlives its scenario."""
        for child in self.children:
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.wait_ended(5.0)
