"""The random-SIGKILL chaos campaign: ``scripts/chaos --kills 300 --seed S``.

It copies the chaos project (``tests/chaos/project``) into a fresh folder, starts
``python -m runtime --project <copy> start`` (the project's own CLI, a real process) on
a fresh SQLite file (or the PostgreSQL schema ``--database`` names), and starts the load
generator (:mod:`tests.chaos.load`, another process with a ``SyncClient``) that emits
events and starts runs at a steady rate. Then, ``--kills`` times: wait a random delay
(seeded; now and then before the service is even up) and SIGKILL the service, then start
it again. Then it stops the load, lets the last service drain everything the load sent,
stops it with SIGTERM (exit 0 expected), and judges what the processes left behind
(:mod:`tests.chaos.checks`).

It prints a JSON summary (seed, kills, what ran, every violation count) on stdout and
exits 1 on any violation, 0 otherwise. Progress goes to stderr. The folder is removed
afterwards unless something was wrong or ``--keep`` was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.chaos.checks import figures, judge, load_evidence
from tests.helpers.databases import Database

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "project"

POLL = 0.02
READY_DEADLINE = 30.0
"""Seconds a service may take to be up (import, migrate, register its worker)."""
STOP_DEADLINE = 30.0
"""Seconds the load generator and the last service get to exit after SIGTERM."""
EARLY_KILLS = 0.15
"""The share of kills that land while the service is still starting (before it is up)."""


@dataclasses.dataclass
class Settings:
    """One campaign's knobs (see :func:`parse`)."""

    kills: int = 300
    seed: int = 0
    rate: float = 10.0
    max_delay: float = 1.5
    drain_timeout: float = 120.0
    workdir: Path | None = None
    keep: bool = False
    database: str | None = None
    """The processes' database URL; ``None``: a SQLite file in the project's copy."""


def _env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["RUNTIME_DATABASE"] = database
    return env


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def say(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


class Campaign:
    """The processes of one campaign and what it recorded about them."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.app = folder / "app"
        shutil.copytree(PROJECT, self.app, ignore=shutil.ignore_patterns("__pycache__"))
        self.db = Database.at(settings.database or f"sqlite:///{self.app / 'runtime.db'}")
        self.ops = folder / "operations.jsonl"
        self.rng = random.Random(settings.seed)
        self.children: list[subprocess.Popen[bytes]] = []
        self.killed: dict[int, int] = {}
        self.kills: list[dict[str, Any]] = []
        self.services = 0
        self.problems: list[str] = []
        self.started = time.monotonic()

    # -- processes ----------------------------------------------------------------

    def _spawn(self, argv: list[str], cwd: Path, output: Path) -> subprocess.Popen[bytes]:
        """``python <argv>`` in ``cwd``, its stdout and stderr to ``output``."""
        with output.open("wb") as sink:
            child = subprocess.Popen(
                [sys.executable, *argv],
                cwd=cwd,
                env=_env(self.db.url),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.children.append(child)
        return child

    def start_service(self) -> subprocess.Popen[bytes]:
        self.services += 1
        output = self.folder / f"service-{self.services:03d}.log"
        argv = ["-m", "runtime", "--project", str(self.app), "start"]
        return self._spawn(argv, self.app, output)

    def start_load(self) -> subprocess.Popen[bytes]:
        s = self.settings
        url = self.db.url
        argv = [
            "-m",
            "tests.chaos.load",
            "--database",
            url,
            "--seed",
            str(s.seed),
            "--rate",
            str(s.rate),
            "--out",
            str(self.ops),
        ]
        return self._spawn(argv, ROOT, self.folder / "load.log")

    def is_up(self, service: subprocess.Popen[bytes]) -> bool:
        """The service registered its worker row (its loops start right after)."""
        try:
            return bool(self.db.query("SELECT 1 FROM workers WHERE pid = ?", service.pid))
        except sqlite3.OperationalError:  # busy for a moment
            return False

    def wait_up(self, service: subprocess.Popen[bytes]) -> float:
        started = time.monotonic()
        deadline = started + READY_DEADLINE
        while not self.is_up(service):
            if service.poll() is not None:
                raise CampaignError(f"service {service.pid} exited ({service.returncode}) early")
            if time.monotonic() > deadline:
                raise CampaignError(f"service {service.pid} not up after {READY_DEADLINE} s")
            time.sleep(POLL)
        return time.monotonic() - started

    def kill(self, service: subprocess.Popen[bytes], number: int) -> None:
        """One kill: a random delay (maybe before the service is up), then SIGKILL."""
        early = self.rng.random() < EARLY_KILLS
        if early:
            delay = self.rng.uniform(0.0, 0.8)
        else:
            self.wait_up(service)
            delay = self.rng.uniform(0.0, self.settings.max_delay)
        time.sleep(delay)
        if service.poll() is not None:
            self.problems.append(f"service {service.pid} died by itself ({service.returncode})")
            return
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        self.killed[service.pid] = number
        self.kills.append(
            {
                "n": number,
                "pid": service.pid,
                "early": early,
                "delay": round(delay, 3),
                "at": round(self._elapsed(), 3),
            }
        )

    def stop(self, process: subprocess.Popen[bytes], what: str) -> int | None:
        """SIGTERM and wait for the exit code (``None`` and SIGKILL if it hangs)."""
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.problems.append(
                f"{what} {process.pid} still running {STOP_DEADLINE} s after SIGTERM"
            )
            process.kill()
            process.wait(10)
            return None

    def reap(self) -> None:
        """Whatever happened, no process of the campaign outlives it."""
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait(10)

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- the campaign ---------------------------------------------------------------

    def backlog(self, cutoff: str | None = None) -> tuple[int, int]:
        """Runs (created before ``cutoff``, if given) not yet terminal; events not yet fanned
        out or delivered."""
        active = (
            "SELECT count(*) FROM runs WHERE status IN "
            "('pending', 'running', 'sleeping', 'paused', 'compensating')"
        )
        runs = (
            self.db.scalar(active)
            if cutoff is None
            else self.db.scalar(active + " AND created_at < ?", cutoff)
        )
        unrouted = self.db.scalar("SELECT count(*) FROM events WHERE NOT fanned_out")
        undelivered = self.db.scalar(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'running')"
        )
        return runs or 0, (unrouted or 0) + (undelivered or 0)

    def run(self) -> dict[str, Any]:
        s = self.settings
        say(f"seed {s.seed}, {s.kills} kills, {s.rate} operations/s, folder {self.folder}")
        service = self.start_service()
        self.wait_up(service)
        load = self.start_load()
        for number in range(1, s.kills + 1):
            self.kill(service, number)
            if number % 25 == 0 or number == s.kills:
                runs, events = self.backlog()
                elapsed = self._elapsed()
                say(f"{number} kills in {elapsed:.0f} s, to do: {runs} runs, {events} events")
            service = self.start_service()
            if load.poll() is not None:
                raise CampaignError(f"the load generator exited ({load.returncode}): see load.log")
        load_code = self.stop(load, "the load generator")
        if load_code != 0:
            self.problems.append(f"the load generator exited with {load_code}")
        cutoff = _utc_now()
        self.wait_up(service)
        deadline = time.monotonic() + s.drain_timeout
        while sum(self.backlog(cutoff)) and time.monotonic() < deadline:
            time.sleep(0.1)
        drain = round(time.monotonic() - (deadline - s.drain_timeout), 1)
        exit_code = self.stop(service, "the last service")
        evidence = load_evidence(self.db, self.app / "execution.log", self.ops, self.killed, cutoff)
        violations, details = judge(evidence, exit_code)
        (self.folder / "kills.json").write_text(json.dumps(self.kills, indent=1))
        for problem in self.problems:
            details.append(f"campaign: {problem}")
        command = f"scripts/chaos --kills {s.kills} --seed {s.seed} --rate {s.rate:g}"
        return {
            "command": command + f" --max-delay {s.max_delay:g}",
            "seed": s.seed,
            "kills": len(self.kills),
            "kills_before_up": sum(1 for k in self.kills if k["early"]),
            "services_started": self.services,
            "seconds": round(self._elapsed(), 1),
            "drain_seconds": drain,
            "last_exit_code": exit_code,
            **figures(evidence),
            "violations": violations,
            "total_violations": sum(violations.values()) + len(self.problems),
            "details": details,
            "folder": str(self.folder),
        }


class CampaignError(Exception):
    """The campaign itself could not go on (a service that never came up)."""


def run_campaign(settings: Settings) -> dict[str, Any]:
    """Run one campaign; its summary (``total_violations`` is 0 when all held)."""
    folder = settings.workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{settings.seed}-"))
    folder.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(settings, folder)
    try:
        summary = campaign.run()
    finally:
        campaign.reap()
    if summary["total_violations"] == 0 and not settings.keep:
        shutil.rmtree(folder, ignore_errors=True)
        summary["folder"] = None
    return summary


def parse(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="scripts/chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kills", type=int, default=300, help="SIGKILLs (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed (default: random)")
    parser.add_argument("--rate", type=float, default=10.0, help="load operations per second")
    parser.add_argument(
        "--max-delay",
        type=float,
        default=1.5,
        help="longest wait (s) between a service being up and its kill",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="seconds the last service gets to finish the load's work",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="folder (default: a temp one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder even when all held")
    parser.add_argument(
        "--database",
        default=None,
        help="the database URL, a postgresql://...?schema=NAME (default: a SQLite file "
        "in the folder); the schema should be new: the campaign judges all it holds",
    )
    args = parser.parse_args(argv)
    if args.kills < 1:
        parser.error(f"--kills must be at least 1, got {args.kills}")
    if args.rate <= 0:
        parser.error(f"--rate must be positive, got {args.rate}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    return Settings(
        kills=args.kills,
        seed=seed,
        rate=args.rate,
        max_delay=args.max_delay,
        drain_timeout=args.drain_timeout,
        workdir=args.workdir,
        keep=args.keep,
        database=args.database,
    )


def main(argv: list[str]) -> int:
    settings = parse(argv)
    try:
        summary = run_campaign(settings)
    except CampaignError as exc:
        say(f"seed {settings.seed}: {exc}")
        return 2
    print(json.dumps(summary, indent=2))
    return 1 if summary["total_violations"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
