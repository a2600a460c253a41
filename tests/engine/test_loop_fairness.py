"""The executor shares the event loop: runs of fast steps give other tasks their turn.

On a free SQLite database a step's checkpoint commits on the loop's thread (the
store's fast path), so nothing in a run of trivial steps waits for I/O. These
tests hold the runtime to what a service needs from it anyway: a ticker next to
a long run keeps ticking, a deadline around ``run()`` is obeyed between two
steps (leaving the run resumable), and background runs started together
interleave. They assert behaviour, not speed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepStatus,
    WorkflowContext,
    workflow,
)
from tests.helpers.definitions import chain

pytestmark = pytest.mark.anyio

LONG = 2000
"""Steps in the long run: tens of milliseconds of work even on a fast machine."""

HELD_MAX_STEPS = 400
"""The most steps a run may complete without giving the loop a turn (a tenth of ``LONG``
and several milliseconds of trivial steps on a fast machine)."""


async def test_a_ticker_keeps_ticking_next_to_a_long_run_of_fast_steps(db_url: str) -> None:
    """Bug: the fast path committed on the loop's thread without ever yielding, so a run
    of 2,000 trivial steps held the loop from its first step to its last (the ticker
    did not tick once in between); now a run gives the loop a turn at least every
    millisecond of its work.

    Counted in steps, not milliseconds: how many steps the run completed between two
    ticks, at most. A millisecond holds some tens of trivial steps on any machine this
    runs on; a run that keeps the loop completes all of them.
    """
    seen: list[tuple[str, int]] = []
    wf = chain("long-chain", LONG, lambda run, index: seen.append((run, index)))
    most_between_ticks = [0]
    ticks = [0]
    stop = anyio.Event()

    async def ticker() -> None:
        last = len(seen)
        while not stop.is_set():
            await anyio.sleep(0.001)
            most_between_ticks[0] = max(most_between_ticks[0], len(seen) - last)
            last = len(seen)
            ticks[0] += 1

    async with Runtime(db_url, background=False) as rt, anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with anyio.fail_after(30):
            result = await wf(rt.container).run(input={"start": 0})
        stop.set()
    assert (result.status, result.result) == (RunStatus.COMPLETED, LONG)
    assert ticks[0] > 1
    assert most_between_ticks[0] <= HELD_MAX_STEPS, (
        f"the run completed {most_between_ticks[0]} steps without giving the loop a turn"
    )


async def test_a_deadline_around_run_is_obeyed_between_two_steps(db_url: str) -> None:
    """Bug: ``anyio.move_on_after(0.02)`` around ``run()`` of a long run was ignored (the
    run went on to its end); now it is cut off at the next step, and the run is left
    resumable: run again with the same transaction id it completes, each step once."""
    calls: Counter[int] = Counter()
    wf = chain("long-deadline", LONG, lambda run, index: calls.update([index]))
    async with Runtime(db_url, background=False) as rt:
        with anyio.move_on_after(0.02) as scope:
            await wf(rt.container).run(input={"start": 0}, transaction_id="t-deadline")
        assert scope.cancelled_caught
        assert sum(calls.values()) < LONG  # cut off part way, not run to its end
        (run,) = (await rt.workflows.list_runs()).runs
        # Handed back: pending, unowned, each step it completed recorded once.
        assert (run.status, run.owner_id) == (RunStatus.PENDING, None)
        stored = await rt.workflows.get_run(run.id)
        assert [s.seq for s in stored.steps] == list(range(1, len(stored.steps) + 1))
        assert all(s.status is StepStatus.COMPLETED for s in stored.steps)

        with anyio.fail_after(30):
            result = await wf(rt.container).run(input={"start": 0}, transaction_id="t-deadline")
        assert (result.run_id, result.status, result.result) == (
            run.id,
            RunStatus.COMPLETED,
            LONG,
        )
        assert calls == Counter(range(LONG))  # every step ran exactly once
        done = await rt.workflows.get_run(run.id)
        assert len(done.steps) == LONG


async def test_background_runs_started_together_interleave(db_url: str) -> None:
    """Bug: five background runs started together ran strictly one after another (each
    held the loop to its end); now their steps interleave."""
    seen: list[tuple[str, int]] = []
    wf = chain("interleaved", 200, lambda run, index: seen.append((run, index)))
    async with Runtime(db_url, workflows=[wf], concurrency=5) as rt:
        handles = [await rt.workflows.run(wf, {"start": 0}) for _ in range(5)]
        for handle in handles:
            assert await handle.result(timeout=30) == 200
    positions: dict[str, list[int]] = {}
    for position, (run_id, _) in enumerate(seen):
        positions.setdefault(run_id, []).append(position)
    assert sorted(positions) == sorted(h.run_id for h in handles)
    # Every run took its first step before any run took its last one.
    assert max(p[0] for p in positions.values()) < min(p[-1] for p in positions.values())


async def test_a_deadline_around_a_durable_function_run_is_obeyed_between_two_steps(
    db_url: str,
) -> None:
    """The same for a ``@workflow`` function: ``ctx.step`` is a cancel point too."""
    calls: Counter[int] = Counter()

    async def bump(index: int, value: int) -> int:
        calls[index] += 1
        return value + 1

    async def long_fn(ctx: WorkflowContext[Any]) -> int:
        value = 0
        for i in range(LONG):
            value = await ctx.step(f"step-{i}", bump, i, value)
        return value

    wf = workflow(name="long_durable")(long_fn)
    async with Runtime(db_url, background=False) as rt:
        with anyio.move_on_after(0.02) as scope:
            await wf(rt.container).run(transaction_id="t-durable")
        assert scope.cancelled_caught
        assert sum(calls.values()) < LONG
        (run,) = (await rt.workflows.list_runs()).runs
        assert (run.status, run.owner_id) == (RunStatus.PENDING, None)

        with anyio.fail_after(30):
            result = await wf(rt.container).run(transaction_id="t-durable")
        assert (result.run_id, result.status, result.result) == (
            run.id,
            RunStatus.COMPLETED,
            LONG,
        )
        assert calls == Counter(range(LONG))


async def test_a_deadline_stops_a_loop_of_emits_and_of_background_starts(db_url: str) -> None:
    """Bug: a loop of ``emit`` (or of ``workflows.run``) calls under a deadline went on to
    its end, the writes never giving the deadline a chance; now each call starts with a
    cancel point (nothing is written when it fires there)."""
    wf = chain("started-in-a-loop", 1)
    async with Runtime(db_url, workflows=[wf], background=False) as rt:
        emitted = 0
        with anyio.move_on_after(0.02) as scope:
            for _ in range(LONG * 10):
                await rt.emit("tick.happened", {"n": emitted})
                emitted += 1
        assert scope.cancelled_caught
        assert emitted < LONG * 10
        assert len((await rt.store.list_events(limit=LONG * 10)).items) == emitted

        started = 0
        with anyio.move_on_after(0.02) as scope:
            for _ in range(LONG * 10):
                await rt.workflows.run(wf, {"start": 0})
                started += 1
        assert scope.cancelled_caught
        assert started < LONG * 10
        assert len((await rt.store.list_runs(limit=LONG * 10)).runs) == started
