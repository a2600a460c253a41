"""asyncio's own cancellation around ``emit()`` and ``run()``: nothing hangs, nothing is lost.

A web framework cancels a request's task with ``task.cancel()`` (or wraps it in
``asyncio.timeout``), which anyio's shields do not stop. The store's write path
must survive it: the writes in flight are committed, the other runs go on, the
cancelled run is resumable. A hang fails the test (``within``, ``Hung``)
rather than blocking the suite.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepStatus,
)
from tests.helpers.backends import opened
from tests.helpers.definitions import chain

pytestmark = pytest.mark.anyio

T = TypeVar("T")
STEPS = 300
CUT_AT = 50
"""The step of the victim run after which its task is cancelled."""


class Hung(Exception):
    """The runtime did not finish something in time (its writes are stuck)."""


async def within(coro: Coroutine[Any, Any, T], seconds: float = 30) -> T:
    """Await ``coro``, raising ``Hung`` if it has not finished after ``seconds``."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise Hung(f"not finished after {seconds} s")
    return task.result()


@asynccontextmanager
async def runtime(db_url: str) -> AsyncIterator[Runtime]:
    """A Runtime, closed at the end, unless it hung: closing it would hang as well."""
    rt = Runtime(db_url, background=False)
    await rt.__aenter__()
    try:
        yield rt
    except Hung:
        raise
    except BaseException as exc:
        await rt.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await rt.__aexit__(None, None, None)


async def stored_events(db_url: str) -> list[str]:
    """The names of every stored event, oldest first."""
    names: list[str] = []
    cursor: str | None = None
    async with opened(db_url) as store:
        while True:
            page = await store.list_events(limit=500, cursor=cursor)
            names.extend(event.name for event in page.items)
            if page.next_cursor is None:
                return names[::-1]
            cursor = page.next_cursor


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_emit_loops_cancelled_by_asyncio_lose_nothing_and_the_runtime_goes_on(
    db_url: str, how: str
) -> None:
    """Bug: ``rt.emit`` in a loop under ``asyncio.timeout(0.05)``: once the deadline hit
    a write that was gathering a transaction, every later ``emit`` waited forever.
    Now each emit that returned is stored, one that was cut off is stored or not
    written at all, and the runtime goes on emitting."""
    called: list[str] = []
    returned: list[str] = []
    going = asyncio.Event()

    async def emitter(rt: Runtime, name: str, deadline: float) -> None:
        try:
            async with asyncio.timeout(deadline if how == "timeout" else None):
                for i in range(1_000_000):
                    called.append(f"{name}.{i}")
                    await rt.emit(f"{name}.{i}", {})
                    returned.append(f"{name}.{i}")
                    if len(returned) >= 300:
                        going.set()
        except TimeoutError:
            pass

    async with runtime(db_url) as rt:
        tasks = [
            asyncio.ensure_future(emitter(rt, name, deadline))
            for name, deadline in (("a", 0.02), ("b", 0.03), ("c", 0.05))
        ]
        if how == "cancel":
            await within(going.wait())
            for task in tasks:
                task.cancel()
        await within(asyncio.wait(tasks))
        await within(rt.emit("after", {}))

    stored = await stored_events(db_url)
    assert stored[-1] == "after"
    assert set(returned) <= set(stored) <= {*called, "after"}
    assert len(set(called) - set(stored)) <= len(tasks)  # at most the one cut off, each


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_a_run_cancelled_by_asyncio_next_to_other_runs_is_resumable(
    db_url: str, how: str
) -> None:
    """Bug: ``asyncio.timeout`` around one ``run()`` while two other runs were in flight
    left the write it was gathering uncommitted: all three runs hung. Now the other
    two complete, the cancelled one is handed back pending, and running it again with
    its transaction id completes it with no step run twice."""
    calls: Counter[tuple[str, int]] = Counter()
    reached = asyncio.Event()

    def count(run: str, index: int) -> None:
        calls[(run, index)] += 1
        if index == CUT_AT:
            reached.set()

    wf = chain("chain", STEPS, count)

    async with runtime(db_url) as rt:

        async def victim() -> None:
            async with asyncio.timeout(None) as deadline:
                task = asyncio.current_task()
                assert task is not None

                async def cut() -> None:
                    await reached.wait()
                    if how == "timeout":
                        deadline.reschedule(asyncio.get_running_loop().time())
                    else:
                        task.cancel()

                cutter = asyncio.ensure_future(cut())
                try:
                    await wf(rt.container).run(input={"start": 0}, transaction_id="victim")
                finally:
                    cutter.cancel()

        victim_task = asyncio.ensure_future(victim())
        others = [asyncio.ensure_future(wf(rt.container).run(input={"start": 0})) for _ in range(2)]
        await within(asyncio.wait([victim_task, *others]))
        if how == "timeout":
            assert isinstance(victim_task.exception(), TimeoutError)
        else:
            assert victim_task.cancelled()
        assert [(o.result().status, o.result().result) for o in others] == [
            (RunStatus.COMPLETED, STEPS)
        ] * 2

        done = {o.result().run_id for o in others}
        (cut_off,) = [r for r in (await rt.workflows.list_runs()).runs if r.id not in done]
        assert (cut_off.status, cut_off.owner_id) == (RunStatus.PENDING, None)
        stored = await rt.workflows.get_run(cut_off.id)
        # Cut off once any of the three runs reached CUT_AT: the victim may be a step
        # behind the first (on PostgreSQL the group commit lets runs drift apart).
        assert CUT_AT - 3 < len(stored.steps) < STEPS
        assert all(s.status is StepStatus.COMPLETED for s in stored.steps)

        result = await within(wf(rt.container).run(input={"start": 0}, transaction_id="victim"))
        assert (result.run_id, result.status, result.result) == (
            cut_off.id,
            RunStatus.COMPLETED,
            STEPS,
        )
        # Every step of every run ran exactly once.
        assert set(calls.values()) == {1}
        assert len(calls) == 3 * STEPS
        await within(rt.emit("after", {}))
