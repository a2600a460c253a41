"""Grow a scratch SQLite file to N finished runs, through the public API, as a user would.

Each grown run is ``history-chain``: 10 trivial steps run with
``wf(container).run()`` (a checkpoint per step), then one ``history.finished``
event emitted with ``rt.emit``, which two subscribers handle: one event and two
finished deliveries per run. Many runs go at once (``LANES``), so their
checkpoints share group commits.

Growth can be interrupted and resumed: a run cut off mid-way is recovered by the
next growth's worker, its deliveries delivered (it may lack its event). A file
that already holds runs of ``history-chain`` is grown only by what it
lacks: the count reads an index whose first column is the workflow
(``runs_idempotency``, ``runs_by_workflow``), not the table.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from runtime.bench.figures import STEPS, _chain
from runtime.errors import ConfigError
from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.specs import Subscriber, SubscriberArgs, SubscriberConfig
from runtime.service import Runtime

GROWN_WORKFLOW = "history-chain"
GROWN_EVENT = "history.finished"
LANES = 256
"""Grown runs in flight at once."""

PROGRESS_EVERY = 5.0
"""Seconds between progress lines."""

DELIVERY_DEADLINE = 3600.0
"""Seconds the grower waits at most for the last deliveries once every run is grown."""


@dataclass(frozen=True)
class Growth:
    """What ``grow`` found and did."""

    runs: int
    grown: int
    seconds: float

    @property
    def runs_per_s(self) -> float:
        return self.grown / self.seconds if self.seconds else 0.0


GROWN_SUBSCRIBERS = ("history-audit", "history-notify")


def grown_workflow() -> CompositionWorkflow:
    """The grown runs' workflow; a measured runtime knows it too, as the service that
    made the history would (the worker's queries filter on the workflows it knows)."""
    return _chain(GROWN_WORKFLOW, STEPS)


def grown_subscribers(handle: Callable[[SubscriberArgs], Awaitable[None]]) -> list[Subscriber]:
    """The two subscribers of the grown event, each calling ``handle``."""
    return [Subscriber(sid, handle, SubscriberConfig(GROWN_EVENT)) for sid in GROWN_SUBSCRIBERS]


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold ``PATH.lock`` while growing or measuring ``path``: one benchmark per file."""
    lock_path = Path(f"{path}.lock")
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"--history-db {path}: another 'runtime bench --history' is using it "
                f"({lock_path} is locked)"
            ) from None
        yield


def count_grown(path: Path) -> int:
    """Runs of the grown workflow in ``path`` (0 for a missing or empty file)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchall()
        if not tables:
            return 0
        (count,) = db.execute(
            "SELECT count(*) FROM runs WHERE workflow = ?", (GROWN_WORKFLOW,)
        ).fetchone()
        return int(count)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"--history-db {path}: not a runtime database ({exc})") from None
    finally:
        db.close()


def _unfinished_deliveries(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        (count,) = db.execute(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'running')"
        ).fetchone()
        return int(count)
    finally:
        db.close()


class _Tally:
    """Runs handed out to the lanes, runs finished, deliveries handled."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.handed = 0
        self.finished = 0
        self.handled = 0
        self.delivered = anyio.Event()

    def take(self) -> bool:
        if self.handed >= self.wanted:
            return False
        self.handed += 1
        return True

    def handle(self) -> None:
        self.handled += 1
        if self.handled >= 2 * self.wanted:
            self.delivered.set()


async def grow(path: Path, runs: int, progress: Callable[[str], None]) -> Growth:
    """Grow ``path`` until it holds ``runs`` finished runs of the grown workflow."""
    have = count_grown(path)
    if have >= runs:
        progress(f"{path}: holds {have:,} grown runs (>= {runs:,}), not grown")
        return Growth(runs=have, grown=0, seconds=0.0)
    tally = _Tally(runs - have)

    async def handle(args: SubscriberArgs) -> None:
        tally.handle()

    subscribers = grown_subscribers(handle)
    chain = grown_workflow()
    progress(f"{path}: holds {have:,} grown runs, growing to {runs:,}")
    started = time.perf_counter()
    # A long interval: the grower pokes the loops itself; their periodic scans
    # would only slow growth down as the history gets long.
    async with Runtime(
        database=f"sqlite:///{path}",
        workflows=[chain],
        subscribers=subscribers,
        interval=60.0,
        retention=0,
    ) as rt:

        async def lane() -> None:
            while tally.take():
                result = await chain(rt.container).run(input={"start": 0})
                if result.result != STEPS:
                    raise AssertionError(f"grown run {result.run_id} returned {result.result!r}")
                await rt.emit(GROWN_EVENT, {"run_id": result.run_id})
                tally.finished += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(_report, tally, have, started, progress)
            async with anyio.create_task_group() as lanes:
                for _ in range(LANES):
                    lanes.start_soon(lane)
            with anyio.fail_after(DELIVERY_DEADLINE):
                await tally.delivered.wait()
                # Deliveries left over from an interrupted growth count too: wait for
                # the store to hold none unfinished.
                while _unfinished_deliveries(path):  # noqa: ASYNC110 - polls the store
                    await anyio.sleep(PROGRESS_EVERY / 5)
            tg.cancel_scope.cancel()
    seconds = time.perf_counter() - started
    growth = Growth(runs=have + tally.finished, grown=tally.finished, seconds=seconds)
    progress(
        f"{path}: grown to {growth.runs:,} runs in {seconds:.1f} s "
        f"({growth.runs_per_s:,.0f} runs/s, deliveries included)"
    )
    return growth


async def _report(
    tally: _Tally, have: int, started: float, progress: Callable[[str], None]
) -> None:
    while True:
        await anyio.sleep(PROGRESS_EVERY)
        elapsed = time.perf_counter() - started
        progress(
            f"grown {have + tally.finished:,} / {have + tally.wanted:,} runs "
            f"({tally.finished / elapsed:,.0f} runs/s), "
            f"{tally.handled:,} / {2 * tally.wanted:,} deliveries handled"
        )
