"""The fault helpers of the example tests: failures on demand, held calls, call counts."""

from __future__ import annotations

import anyio
import pytest

from services.data import UserDataService
from services.messaging import EmailService
from tests.examples.faults import ServiceError, count_calls, fail_on, heal, hold
from tests.helpers.waiting import wait_until


async def test_a_failure_lets_after_calls_through_then_fails_times_calls() -> None:
    email = EmailService()
    calls = count_calls(email)
    fail_on(email, "send_email", times=1, after=1)

    await email.send_email("a@example.com", "1", "")
    with pytest.raises(ServiceError, match=r"^email\.send_email is unavailable$"):
        await email.send_email("b@example.com", "2", "")
    await email.send_email("c@example.com", "3", "")

    # The failed call changed nothing, and was counted.
    assert [m["to"] for m in email.sent] == ["a@example.com", "c@example.com"]
    assert calls == {"send_email": 3}


async def test_heal_stops_every_failure_of_a_service() -> None:
    data = UserDataService([{"id": 1, "name": "ada", "email": "A@x"}])
    fail_on(data, "transform_data")  # a synchronous method fails as well
    with pytest.raises(ServiceError):
        data.transform_data([])

    heal(data)

    assert data.transform_data([]) == []


async def test_held_calls_wait_for_the_release() -> None:
    email = EmailService()
    gate = hold(email, "send_email")
    async with anyio.create_task_group() as tg:
        tg.start_soon(email.send_email, "a@example.com", "held", "")
        await wait_until(lambda: gate.waiting == 1)
        assert email.sent == []
        gate.release()
    assert gate.waiting == 0
    assert [m["data"]["subject"] for m in email.sent] == ["held"]


def test_an_unknown_operation_or_a_synchronous_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="no operation 'send_fax'"):
        fail_on(EmailService(), "send_fax")
    with pytest.raises(ValueError, match="only an async method"):
        hold(UserDataService(), "transform_data")
