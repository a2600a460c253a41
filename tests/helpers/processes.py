"""Real processes for the end-to-end tests: the service, an emitter, the CLI, and what they leave.

Everything a test learns comes from files a killed process leaves behind: the
service's JSON log (stdout and stderr, unbuffered), the execution log the
project's steps fsync line by line, and the SQLite database, read with plain
``SELECT``s. Every wait is a poll with a deadline (:func:`~tests.helpers.waiting.wait_until`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers.waiting import Condition, holds, wait_until

E2E = Path(__file__).resolve().parents[1] / "e2e"
TEMPLATE = E2E / "project"
EXTRAS = E2E / "extras"

READY_DEADLINE = 15.0
"""Seconds a service may take to start (importing Python and the project included)."""

# An application process that is not the service: a Django or Flask app would
# hold a SyncClient like this one and emit from its views.
EMITTER = """
import json, sys, time
from runtime import SyncClient

url, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ids = []
with SyncClient(url) as client:
    for i in range(count):
        ids.append(client.emit("user.signed_up", {"name": f"user-{i}"}))
        time.sleep(pause)
print(json.dumps(ids))
"""


def _environment() -> dict[str, str]:
    """The test's environment, minus RUNTIME_* overrides, with unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Project:
    """A copy of ``tests/e2e/project`` in a temporary folder, and the processes run on it.

    Args:
        root: where to copy the project (must not exist).
        extra_subscribers: file names from ``tests/e2e/extras`` to add to ``subscribers/``.
    """

    def __init__(self, root: Path, extra_subscribers: tuple[str, ...] = ()) -> None:
        shutil.copytree(TEMPLATE, root, ignore=shutil.ignore_patterns("__pycache__"))
        for name in extra_subscribers:
            shutil.copy(EXTRAS / name, root / "subscribers" / name)
        self.root = root
        self.db = root / "runtime.db"
        self.url = f"sqlite:///{self.db}"
        self.children: list[subprocess.Popen[bytes]] = []
        self._outputs = 0

    # -- processes ------------------------------------------------------------

    def spawn(self, *args: str, output: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``python <args>`` in the project folder; killed by :meth:`kill_all`."""
        if output is None:
            self._outputs += 1
            output = self.root / f"process-{self._outputs}.out"
        with output.open("wb") as sink:
            child = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.root,
                env=_environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.children.append(child)
        return child

    def start_service(self, *options: str) -> Service:
        """``python -m runtime --project <root> start <options>``, not waited for."""
        self._outputs += 1
        output = self.root / f"service-{self._outputs}.log"
        child = self.spawn(
            "-m", "runtime", "--project", str(self.root), "start", *options, output=output
        )
        return Service(child, output)

    def cli(self, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        """Run a ``runtime`` command on the project and return what it printed."""
        return subprocess.run(
            [sys.executable, "-m", "runtime", "--project", str(self.root), *args],
            cwd=self.root,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def emitter(self, count: int, pause: float = 0.0) -> Emitter:
        """Another process that emits ``count`` ``user.signed_up`` events with a SyncClient."""
        self._outputs += 1
        output = self.root / f"emitter-{self._outputs}.out"
        child = self.spawn("-c", EMITTER, self.url, str(count), str(pause), output=output)
        return Emitter(child, output)

    def kill_all(self) -> None:
        """SIGKILL every child still running (a test's ``finally``)."""
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait(5)

    # -- what the processes left behind ----------------------------------------

    def execution_log(self) -> list[dict[str, Any]]:
        """The lines the project's steps and handlers wrote, in order."""
        path = self.root / "execution.log"
        if not path.exists():
            return []
        # A line cut off by SIGKILL cannot be a whole JSON object: it did not happen.
        lines = []
        for text in path.read_text().splitlines():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
        return lines

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a ``SELECT`` on the project's database (an empty list before it exists)."""
        if not self.db.exists():
            return []
        db = sqlite3.connect(self.db, timeout=5)
        try:
            db.execute("PRAGMA query_only = ON")
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the service has not created the schema yet
                return []
            raise
        finally:
            db.close()

    def runs(self, workflow: str = "greet") -> dict[str, dict[str, Any]]:
        """The runs of a workflow by transaction id: ``{"id", "status", "output"}``."""
        rows = self.query(
            "SELECT idempotency_key, id, status, output FROM runs WHERE workflow = ?", workflow
        )
        return {
            key: {"id": id, "status": status, "output": json.loads(output) if output else None}
            for key, id, status, output in rows
        }

    def deliveries(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every delivery by (event id, subscriber id): ``{"status", "attempts", "error"}``."""
        rows = self.query("SELECT event_id, subscriber_id, status, attempts, error FROM deliveries")
        return {
            (event, subscriber): {
                "status": status,
                "attempts": attempts,
                "error": json.loads(error) if error else None,
            }
            for event, subscriber, status, attempts, error in rows
        }


class Service:
    """A running ``runtime start`` and its JSON log."""

    def __init__(self, process: subprocess.Popen[bytes], output: Path) -> None:
        self.process = process
        self.output = output

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> list[dict[str, Any]]:
        """The service's JSON log lines so far (other output is skipped)."""
        lines = []
        for text in self.output.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except json.JSONDecodeError:
                    continue
        return lines

    def logged(self, event: str) -> bool:
        return any(line.get("event") == event for line in self.log())

    def http_url(self) -> str:
        """The base URL the service's HTTP server listens on (from its ``http_listening``)."""
        [url] = [line["url"] for line in self.log() if line.get("event") == "http_listening"]
        return str(url).rstrip("/")

    async def wait_ready(self, timeout: float = READY_DEADLINE) -> float:
        """Wait until the service logged ``runtime_started``; returns how long it took."""
        started = time.monotonic()
        await self.wait_for(lambda: self.logged("runtime_started"), timeout, "it to start")
        return time.monotonic() - started

    async def wait_for(self, condition: Condition, timeout: float, what: str) -> None:
        """Wait until ``condition`` holds; fail at once, with its output, if the service exits.

        Raises:
            AssertionError: the service exited meanwhile.
            TimeoutError: ``condition`` did not hold within ``timeout`` seconds.
        """

        async def held_while_running() -> bool:
            if await holds(condition):
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the service exited ({self.process.returncode}) while waiting for {what}:\n"
                    f"{self.tail()}"
                )
            return False

        await wait_until(
            held_while_running, timeout, what=lambda: f"{what}\nservice output:\n{self.tail()}"
        )

    def sigkill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    async def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then wait for the exit code (``TimeoutError`` if it takes too long)."""
        self.process.send_signal(signal.SIGTERM)
        await wait_until(lambda: self.process.poll() is not None, timeout, what="it to exit")
        return self.process.returncode

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])


class Emitter:
    """The emitting process: when it exits, it prints the ids of the events it emitted."""

    def __init__(self, process: subprocess.Popen[bytes], output: Path) -> None:
        self.process = process
        self.output = output

    def exited(self) -> bool:
        return self.process.poll() is not None

    async def event_ids(self, timeout: float = 15.0) -> list[str]:
        """Wait for the process to exit 0 and return the event ids, in emit order."""
        await wait_until(self.exited, timeout, what="the emitter to exit")
        text = self.output.read_text()
        assert self.process.returncode == 0, text
        ids: list[str] = json.loads(text.strip().splitlines()[-1])
        return ids
