"""What a subscriber's handler raises is a failed delivery attempt, whatever it raises."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from runtime.models import DeliveryStatus
from tests.helpers.definitions import running, sub
from tests.helpers.waiting import wait_delivery

pytestmark = pytest.mark.usefixtures("fast_retries")


def raise_cancelled() -> None:
    raise asyncio.CancelledError()


def raise_system_exit() -> None:
    sys.exit(3)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("raiser", "type_name"),
    [
        (raise_cancelled, "CancelledError"),
        (raise_system_exit, "SystemExit"),
        (raise_keyboard_interrupt, "KeyboardInterrupt"),
    ],
    ids=["cancelled", "system-exit", "keyboard-interrupt"],
)
async def test_a_handler_raising_a_base_exception_is_a_failed_attempt(
    db_url: str, raiser: Callable[[], None], type_name: str
) -> None:
    """Bug: a CancelledError raised by a handler's own code stopped the dispatcher (no
    later event was delivered); a SystemExit or KeyboardInterrupt killed the service.
    Now each is a failed delivery attempt, retried, then dead, and the dispatcher goes on."""
    calls: list[str] = []

    async def bad(args: Any) -> None:
        calls.append("bad")
        raiser()

    async def good(args: Any) -> None:
        calls.append("good")

    subscribers = [sub("bad", bad, "thing.bad", max_attempts=2), sub("good", good, "thing.ok")]
    async with running(db_url, subscribers) as rt:
        bad_event = await rt.emit("thing.bad")
        dead = await wait_delivery(rt, bad_event, "bad", [DeliveryStatus.DEAD])
        ok_event = await rt.emit("thing.ok")
        await wait_delivery(rt, ok_event, "good", [DeliveryStatus.DONE])
    assert calls == ["bad", "bad", "good"]
    assert dead.attempts == 2
    assert dead.error is not None
    assert dead.error.type == type_name
    assert "subscriber 'bad'" in dead.error.message


async def test_a_handler_that_swallows_its_timeout_is_a_timed_out_attempt(db_url: str) -> None:
    """Bug: a handler that caught the cancellation of its timeout and returned was
    recorded ``done``; it ran past its timeout, so the attempt failed."""

    async def stubborn(args: Any) -> None:
        try:
            await anyio.sleep_forever()
        except asyncio.CancelledError:
            return

    async with running(
        db_url, [sub("stubborn", stubborn, "x.y", timeout=0.05, max_attempts=1)]
    ) as rt:
        event_id = await rt.emit("x.y")
        dead = await wait_delivery(rt, event_id, "stubborn", [DeliveryStatus.DEAD])
    assert dead.error is not None
    assert dead.error.type == "HandlerTimeoutError"
