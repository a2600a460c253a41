"""Three ``runtime start`` processes on one database, and what they leave behind.

:class:`Cluster` copies ``tests/multiprocess/project`` into a fresh folder and starts
``python -m runtime --project <copy> start`` in it as many times as asked, every process
on the one database it is given (``RUNTIME_DATABASE``). Everything the tests judge comes
from what the processes leave: the project's execution log (``execution.log``, one fsynced
JSON line per thing a step did, with its pid), each service's JSON log, and the database's
tables, read with plain ``SELECT``s (:class:`~tests.helpers.databases.Database`).

The tests are synchronous (the processes under test run their own event loops); every
wait polls with a deadline and fails at once, with the service's output, when a service
that should be running exited.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers.databases import Database
from tests.helpers.processes import Service

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "project"
LAUNCH = "tests.multiprocess.launch"
"""``runtime start`` with the lease the cluster is given (:mod:`tests.multiprocess.launch`)."""

READY_DEADLINE = 30.0
"""Seconds a service may take to start (three start at once on two shared cores)."""

POLL = 0.05
"""Seconds between two looks at the database or a file while waiting."""

T = TypeVar("T")


def _environment(database: str) -> dict[str, str]:
    """The test's environment minus RUNTIME_* overrides, plus the shared database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["RUNTIME_DATABASE"] = database
    # For tests.multiprocess.launch; the project's own folder (the working directory)
    # comes first, so its workflows/ and subscribers/ are the ones imported.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


class Cluster:
    """The project's copy, its database, and the services started on them.

    Args:
        root: where to copy the project (must not exist).
        db: the database every process is given.
        lease: the processes' lease TTL, seconds.
    """

    def __init__(self, root: Path, db: Database, lease: float) -> None:
        shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("__pycache__"))
        self.root = root
        self.db = db
        self.lease = lease
        self.up_at = 0.0
        """When (``time.time()``) the first services were all up; set by whoever waits."""
        self.services: list[Service] = []
        self.started = 0

    # -- processes ----------------------------------------------------------------

    def start(self) -> Service:
        """Start one more ``runtime start`` (not waited for: see :meth:`wait_ready`)."""
        self.started += 1
        output = self.root / f"service-{self.started}.log"
        with output.open("wb") as sink:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    LAUNCH,
                    str(self.lease),
                    "--project",
                    str(self.root),
                    "start",
                ],
                cwd=self.root,
                env=_environment(self.db.url),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        service = Service(child, output)
        self.services.append(service)
        return service

    def wait_ready(self, *services: Service) -> None:
        """Wait until each of ``services`` logged ``runtime_started``."""
        for service in services:
            self.wait(
                f"service {service.pid} to start",
                functools.partial(service.logged, "runtime_started"),
                READY_DEADLINE,
                services=(service,),
            )

    def running(self) -> list[Service]:
        return [s for s in self.services if s.process.poll() is None]

    def by_pid(self, pid: int) -> Service:
        [service] = [s for s in self.services if s.pid == pid]
        return service

    def kill_all(self) -> None:
        """SIGKILL every service still running (the fixture's ``finally``)."""
        for service in self.running():
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(10)

    def wait(
        self,
        what: str,
        condition: Callable[[], T | None],
        timeout: float,
        services: tuple[Service, ...] | None = None,
    ) -> T:
        """Poll ``condition`` until it returns something truthy, and return that.

        Fails the test, naming ``what``, when ``timeout`` seconds pass, or at once when
        one of ``services`` (by default: every service running when the wait began) exits.
        """
        watched = self.running() if services is None else list(services)
        deadline = time.monotonic() + timeout
        while True:
            found = condition()
            if found:
                return found
            for service in watched:
                if service.process.poll() is not None:
                    pytest.fail(
                        f"service {service.pid} exited ({service.process.returncode}) "
                        f"while waiting for {what}:\n{service.tail()}"
                    )
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {s.pid}:\n{s.tail(10)}" for s in watched)
                pytest.fail(f"not {what} within {timeout} s; services' output:\n{tails}")
            time.sleep(POLL)

    # -- what the processes left behind ----------------------------------------------

    def execution_log(self) -> list[dict[str, Any]]:
        """The lines the project's steps wrote, in order (whole lines only: each is fsynced
        in one write, so a SIGKILL cannot leave half of one)."""
        path = self.root / "execution.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def release(self, token: str) -> None:
        """Let the held step of the ``stall`` run of ``token`` go on (wherever it runs)."""
        (self.root / f"release-{token}").touch()
