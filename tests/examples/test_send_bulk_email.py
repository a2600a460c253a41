"""Bulk e-mail (seed 003): one step per user, named after them, in a deterministic order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime import Container, RunFailed, RunStatus, Runtime
from tests.examples.faults import fail_on, heal
from tests.examples.sonamu import sonamu_runtime, steps_of
from tests.helpers.waiting import WAIT

MESSAGE = {"subject": "News", "body": "Something new."}


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container) as runtime:
        yield runtime


async def test_each_user_gets_a_step_of_their_own(rt: Runtime, container: Container) -> None:
    # Ids in any order, one unknown: the users come back by id, the unknown one left out.
    handle = await rt.workflows.run("send_bulk_email", {"user_ids": [3, 1, 99, 2], **MESSAGE})

    assert await handle.result(timeout=WAIT) == {"sent": 3}
    run = await rt.workflows.get_run(handle.run_id)
    assert steps_of(run) == [
        ("fetch_users", "completed", 1),
        ("send_email_1", "completed", 1),
        ("send_email_2", "completed", 1),
        ("send_email_3", "completed", 1),
    ]
    assert [(m["to"], m["data"]) for m in container.resolve("email").sent] == [
        ("ada@example.com", MESSAGE),
        ("grace@example.com", MESSAGE),
        ("alan@example.com", MESSAGE),
    ]


async def test_a_retry_mails_only_the_users_not_mailed_yet(
    rt: Runtime, container: Container
) -> None:
    email = container.resolve("email")
    fail_on(email, "send_email", after=1)  # the first e-mail goes out, the second fails

    handle = await rt.workflows.run("send_bulk_email", {"user_ids": [1, 2, 3], **MESSAGE})
    with pytest.raises(RunFailed):
        await handle.result(timeout=WAIT)
    failed = await rt.workflows.get_run(handle.run_id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None and failed.error.step == "send_email_2"
    assert [m["to"] for m in email.sent] == ["ada@example.com"]

    heal(email)
    await rt.workflows.retry(handle.run_id)

    assert await handle.result(timeout=WAIT) == {"sent": 3}
    run = await rt.workflows.get_run(handle.run_id)
    assert [(name, status) for name, status, _ in steps_of(run)] == [
        ("fetch_users", "completed"),
        ("send_email_1", "completed"),
        ("send_email_2", "completed"),
        ("send_email_3", "completed"),
    ]
    # Nobody got the message twice.
    assert [m["to"] for m in email.sent] == [
        "ada@example.com",
        "grace@example.com",
        "alan@example.com",
    ]
