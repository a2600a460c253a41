"""The welcome e-mail (seed 003): two versions side by side, the newest by default."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime import Container, RunStatus, Runtime
from tests.examples.sonamu import by_recipient, sonamu_runtime, step_names
from tests.helpers.waiting import WAIT
from workflows.welcome_email import register, send_welcome_email, send_welcome_email_v1


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    async with sonamu_runtime(db_url, container) as runtime:
        yield runtime


def test_both_versions_share_one_name() -> None:
    assert (send_welcome_email_v1.name, send_welcome_email_v1.version) == (
        "send_welcome_email",
        "v1",
    )
    assert (send_welcome_email.name, send_welcome_email.version) == ("send_welcome_email", "v2")


async def test_v1_and_v2_run_side_by_side_and_the_newest_is_the_default(
    rt: Runtime, container: Container
) -> None:
    old = await rt.workflows.run("send_welcome_email", {"email": "old@example.com"}, version="v1")
    new = await rt.workflows.run("send_welcome_email", {"email": "new@example.com"})

    assert await old.result(timeout=WAIT) == {"success": True}
    assert await new.result(timeout=WAIT) == {"success": True}
    old_run, new_run = (
        await rt.workflows.get_run(old.run_id),
        await rt.workflows.get_run(new.run_id),
    )
    assert (old_run.version, step_names(old_run)) == ("v1", ["send_email"])
    assert (new_run.version, step_names(new_run)) == ("v2", ["send_html_email"])
    # Different behaviour: v1 sends plain text, v2 HTML.
    sent = by_recipient(container.resolve("email").sent)
    assert sent["old@example.com"]["template"] == "text"
    assert sent["old@example.com"]["data"]["body"].startswith("Hello old@example.com")
    assert sent["new@example.com"]["template"] == "html"
    assert sent["new@example.com"]["data"]["html"].startswith("<h1>Welcome!</h1>")


async def test_a_run_keeps_the_version_it_started_with_after_v2_is_deployed(
    db_url: str, container: Container
) -> None:
    # Before the deploy: only v1 exists, and a run of it is queued (no worker here).
    async with Runtime(
        database=db_url, workflows=[send_welcome_email_v1], container=container, background=False
    ) as before:
        handle = await before.workflows.run("send_welcome_email", {"email": "early@example.com"})
        assert (await before.workflows.get_run(handle.run_id)).version == "v1"

    # After the deploy: both versions; the queued run still runs v1's code.
    async with Runtime(
        database=db_url,
        workflows=[send_welcome_email_v1, send_welcome_email],
        container=container,
    ) as after:
        record = await after.workflows.wait(handle.run_id, WAIT)

    assert record.status is RunStatus.COMPLETED
    assert [m["template"] for m in container.resolve("email").sent] == ["text"]


async def test_register_returns_at_once_and_the_email_follows_in_the_background(
    rt: Runtime, container: Container
) -> None:
    user_id = await register(rt.container, "newcomer@example.com", "s3cret-pass")

    assert container.resolve("users").users[user_id] == {
        "id": user_id,
        "email": "newcomer@example.com",
    }
    page = await rt.workflows.list_runs(workflow="send_welcome_email")
    [run] = page.runs
    assert (run.version, run.input) == ("v2", {"email": "newcomer@example.com"})
    record = await rt.workflows.wait(run.id, WAIT)
    assert (record.status, record.output) == (RunStatus.COMPLETED, {"success": True})
    assert by_recipient(container.resolve("email").sent)["newcomer@example.com"]["template"] == (
        "html"
    )
