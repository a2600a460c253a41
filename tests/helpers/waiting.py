"""Waiting in tests: every wait polls the store or a file, bounded; none sleeps to let time pass.

The code under test runs in the same event loop (or in another process), so a test
waits for what a user would see: a run reaching a status, a delivery finishing.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio

from runtime import RunRecord, RunStatus, Runtime
from runtime.models import DeliveryRecord, DeliveryStatus, EventRecord
from runtime.testing import wait_for_status

WAIT = 5.0
"""Seconds any wait may take at most by default (they take milliseconds)."""

POLL = 0.005
"""Seconds between two looks at the store (or a file) while waiting."""

Condition = Callable[[], Awaitable[bool] | bool]
"""What a wait polls: a plain or an async function returning whether it holds."""


async def wait_until(
    condition: Condition, timeout: float = WAIT, *, what: str | Callable[[], str] | None = None
) -> None:
    """Poll ``condition`` every :data:`POLL` seconds until it holds.

    Args:
        condition: a plain or async function; an exception it raises ends the wait.
        timeout: seconds to wait at most.
        what: names what is awaited in the ``TimeoutError`` (a function: called then).

    Raises:
        TimeoutError: ``condition`` did not hold within ``timeout`` seconds.
    """
    try:
        with anyio.fail_after(timeout):
            while not await holds(condition):  # noqa: ASYNC110 - polls, bounded by fail_after
                await anyio.sleep(POLL)
    except TimeoutError:
        if what is None:
            raise
        described = what() if callable(what) else what
        raise TimeoutError(f"waited {timeout} s for {described}") from None


async def holds(condition: Condition) -> bool:
    """Whether ``condition`` holds now (awaited when it is async)."""
    outcome = condition()
    if inspect.isawaitable(outcome):
        outcome = await outcome
    return bool(outcome)


async def wait_status(
    rt: Runtime, run_id: str, *statuses: RunStatus, timeout: float = WAIT
) -> RunRecord:
    """Wait until the run is in one of ``statuses``; return its record (with steps).

    :func:`runtime.testing.wait_for_status`, bounded, with a failure that says where the
    run is instead.

    Raises:
        AssertionError: not within ``timeout`` seconds; names the last status, owner, error.
    """
    try:
        with anyio.fail_after(timeout):
            return await wait_for_status(rt.workflows, run_id, *statuses)
    except TimeoutError:
        last = await rt.workflows.get_run(run_id)
        state = (last.status.value, last.owner_id, last.error)
        wanted = [s.value for s in statuses]
        raise AssertionError(
            f"run {run_id} not in {wanted} after {timeout}s; (status, owner, error): {state}"
        ) from None


async def wait_ended(rt: Runtime, run_id: str, timeout: float = WAIT) -> RunRecord:
    """Wait until the run ended (whatever its end); return its record with its steps."""
    await rt.workflows.wait(run_id, timeout=timeout)
    return await rt.workflows.get_run(run_id)


async def deliveries_of(
    rt: Runtime,
    *,
    event_id: str | None = None,
    subscriber_id: str | None = None,
    status: Sequence[DeliveryStatus] | None = None,
) -> list[DeliveryRecord]:
    """The deliveries the store holds (at most 1,000), filtered as ``list_deliveries`` filters."""
    page = await rt.store.list_deliveries(
        event_id=event_id, subscriber_id=subscriber_id, status=status, limit=1000
    )
    return list(page.items)


async def deliveries(rt: Runtime, event_id: str) -> dict[str, DeliveryRecord]:
    """The deliveries of one event, by subscriber id."""
    return {d.subscriber_id: d for d in await deliveries_of(rt, event_id=event_id)}


async def events_named(rt: Runtime, name: str) -> list[EventRecord]:
    """The events of one name the store holds (at most 1,000)."""
    return list((await rt.store.list_events(name=name, limit=1000)).items)


FINISHED: tuple[DeliveryStatus, ...] = (DeliveryStatus.DONE, DeliveryStatus.DEAD)
"""The statuses of a delivery that will not be attempted again (unless redriven)."""


async def wait_delivery(
    rt: Runtime,
    event_id: str,
    subscriber_id: str,
    statuses: Iterable[DeliveryStatus] = FINISHED,
    timeout: float = WAIT,
) -> DeliveryRecord:
    """Wait until the event's delivery to the subscriber is in one of ``statuses``; return it."""
    wanted = tuple(statuses)
    found: list[DeliveryRecord] = []

    async def reached() -> bool:
        found[:] = [
            d
            for d in await deliveries_of(rt, event_id=event_id, subscriber_id=subscriber_id)
            if d.status in wanted
        ]
        return bool(found)

    await wait_until(reached, timeout)
    return found[0]
