"""The dashboard in a real browser (Debian's chromium through Playwright) over a real port:
clicking through to a run, pausing and resuming it, redriving a dead delivery, signing in.

The database is seeded by the demo project's runtime, then served without a worker, as
``runtime dashboard`` serves it, so what the test clicks stays where it put it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Page, expect

from runtime.config import HttpAddress
from runtime.store import open_store
from runtime.web.server import HttpServer
from tests.web.browser import LAPTOP, PHONE, chromium, require_chromium
from tests.web.conftest import dashboard_app, seeded_database
from tests.web.demo import Seeded

TOKEN = "browser-test-token-0123"
BOUND = 90
"""Seconds a whole browser test may take at most."""
STEP = 10_000
"""Milliseconds any one browser action or expectation may take at most."""


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


@asynccontextmanager
async def serving(tmp_path: Path, token: str | None = None) -> AsyncIterator[tuple[str, Seeded]]:
    """The dashboard over a seeded database on a free loopback port: its URL and the ids."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    ids, known = await seeded_database(url)
    store = await open_store(url)
    try:
        server = HttpServer(dashboard_app(store, known, token), HttpAddress("127.0.0.1", 0))
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            yield f"http://127.0.0.1:{server.port}", ids
            server.drain()
            tg.cancel_scope.cancel()
    finally:
        await store.close()


@asynccontextmanager
async def browsing(viewport: dict[str, int] = LAPTOP) -> AsyncIterator[Page]:
    async with chromium() as browser:
        context = await browser.new_context(viewport=viewport, timezone_id="Asia/Tokyo")  # type: ignore[arg-type]
        context.set_default_timeout(STEP)
        yield await context.new_page()
        await context.close()


async def test_click_to_a_run_pause_it_and_resume_it(tmp_path: Path) -> None:
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(base + "/")
            await expect(page.get_by_role("heading", name="Runs")).to_be_visible()
            await page.get_by_role("link", name=ids.sleeping).click()
            await expect(page).to_have_url(f"{base}/runs/{ids.sleeping}")
            await expect(page.locator(".page-head .badge")).to_have_text("sleeping")
            await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
            await page.get_by_role("button", name="Pause", exact=True).click()
            await expect(page).to_have_url(f"{base}/runs/{ids.sleeping}?done=pause")
            await expect(page.locator(".page-head .badge")).to_have_text("paused")
            await expect(page.get_by_role("status")).to_have_text("Paused.")
            await expect(page.get_by_role("button", name="Pause", exact=True)).to_have_count(0)
            await page.get_by_role("button", name="Resume").click()
            await expect(page.locator(".page-head .badge")).to_have_text("pending")
            await expect(page.get_by_role("status")).to_contain_text("Resumed")
            await expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()


async def test_times_show_in_the_viewers_zone_with_utc_on_hover(tmp_path: Path) -> None:
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(f"{base}/runs/{ids.completed}")
            created = page.locator("dd time").first
            stamp = await created.get_attribute("datetime")
            title = await created.get_attribute("title")
            assert stamp is not None and title is not None and title.endswith(" UTC")
            # Tokyo is UTC+9 all year: the text is the UTC time plus nine hours.
            utc_hour = int(title[11:13])
            await expect(created).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
            shown = await created.text_content()
            assert shown is not None and int(shown[11:13]) == (utc_hour + 9) % 24


async def test_a_refused_action_is_shown_on_the_run_page(tmp_path: Path) -> None:
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(f"{base}/runs/{ids.sleeping}")
            # Another operator cancels the run while this page shows it sleeping.
            other = page.context.request
            done = await other.post(f"{base}/api/runs/{ids.sleeping}/cancel")
            assert done.ok
            await page.get_by_role("button", name="Pause", exact=True).click()
            alert = page.get_by_role("alert")
            await expect(alert).to_contain_text(f"cannot pause run {ids.sleeping}")
            await expect(alert).to_be_visible()
            # The page answered the POST: it reloads the run from the run's own URL, and
            # the refusal stays in view while the run below follows.
            await expect(page.locator("#refresh-state")).to_contain_text("updated", timeout=STEP)
            await expect(page.locator(".page-head .badge")).to_have_text("compensating")
            await expect(alert).to_be_visible()


async def test_redrive_a_dead_delivery(tmp_path: Path) -> None:
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(base + "/")
            await page.get_by_role("link", name="Dead deliveries").click()
            row = page.locator("tr", has_text=ids.dead_delivery)
            await expect(row).to_contain_text("crm.example.com refused the connection")
            await row.get_by_role("button", name="Redrive").click()
            await expect(page.get_by_role("status")).to_contain_text("is pending again")
            await expect(page.locator("tr", has_text=ids.dead_delivery)).to_have_count(0)
            await page.get_by_role("link", name="Events").click()
            delivery = page.locator(".delivery", has_text="sync-crm")
            await expect(delivery.locator(".badge")).to_have_text("pending")


async def test_the_token_is_asked_once_and_kept_in_a_cookie(tmp_path: Path) -> None:
    with anyio.fail_after(BOUND):
        async with serving(tmp_path, token=TOKEN) as (base, _), browsing() as page:
            await page.goto(base + "/jobs")
            await expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))
            await page.get_by_label("Token").fill("not-the-token")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_have_text("That is not the token.")
            await page.get_by_label("Token").fill(TOKEN)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(base + "/jobs")
            await expect(page.get_by_role("heading", name="Jobs and schedules")).to_be_visible()
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["runtime_token"]["httpOnly"] is True
            await page.get_by_role("link", name="Workflows").click()
            await expect(page.get_by_role("cell", name="place_order")).to_be_visible()
            await page.get_by_role("button", name="Sign out").click()
            await expect(page).to_have_url(base + "/login")
            await page.goto(base + "/")
            await expect(page).to_have_url(re.compile(r"/login\?next=/$"))


async def test_the_runs_table_refreshes_itself_keeping_the_filters(tmp_path: Path) -> None:
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(base + "/?status=pending")
            table = page.locator("#runs-table")
            await expect(table.get_by_role("link", name=ids.queued)).to_be_visible()
            other = page.context.request
            started = await other.post(
                f"{base}/api/workflows/place_order/runs", data={"input": {"id": "o-2000"}}
            )
            new_id = (await started.json())["run_id"]
            assert (await other.post(f"{base}/api/runs/{ids.queued}/cancel")).ok
            # Within a refresh or two the new run appears and the canceled one leaves.
            await expect(table.get_by_role("link", name=new_id)).to_be_visible(timeout=STEP)
            await expect(table.get_by_role("link", name=ids.queued)).to_have_count(0)
            await expect(page.locator('input[value="pending"]')).to_be_checked()
            await expect(page.locator("#refresh-state")).to_contain_text("updated")
            await page.locator("#auto-refresh").uncheck()
            assert await page.evaluate("localStorage.getItem('runtime.autoRefresh')") == "off"


async def test_screenshots_of_the_runs_page_and_a_run_page(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids):
            for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
                async with browsing(viewport) as page:
                    await page.goto(base + "/")
                    await page.screenshot(path=str(shots / f"runs-{name}.png"), full_page=True)
                    await page.goto(f"{base}/runs/{ids.failed}")
                    await page.screenshot(path=str(shots / f"run-{name}.png"), full_page=True)
                    # Nothing wider than the screen but the tables, which scroll.
                    width = await page.evaluate("document.documentElement.scrollWidth")
                    assert width <= viewport["width"]
    written = sorted(p.name for p in shots.iterdir() if p.stat().st_size > 10_000)
    assert written == [
        "run-laptop.png",
        "run-phone.png",
        "runs-laptop.png",
        "runs-phone.png",
    ]


async def test_cancel_a_sleeping_run_and_retry_a_failed_one(tmp_path: Path) -> None:
    # A browser test (or an operator's script) clicks Cancel as DESIGN 6 names it;
    # Playwright, like any automation, dismisses a window.confirm() it did not expect.
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(f"{base}/runs/{ids.sleeping}")
            await page.get_by_role("button", name="Cancel").click()
            await expect(page).to_have_url(f"{base}/runs/{ids.sleeping}?done=cancel")
            await expect(page.get_by_role("status")).to_contain_text("Cancel")
            badge = page.locator(".page-head .badge")
            await expect(badge).to_have_text(re.compile("^(compensating|canceled)$"))
            await expect(page.get_by_role("button", name="Pause", exact=True)).to_have_count(0)
            await page.goto(f"{base}/runs/{ids.failed}")
            await expect(badge).to_have_text("failed")
            for refused in ("Pause", "Resume", "Cancel"):
                await expect(page.get_by_role("button", name=refused)).to_have_count(0)
            await page.get_by_role("button", name="Retry").click()
            await expect(page).to_have_url(f"{base}/runs/{ids.failed}?done=retry")
            await expect(badge).to_have_text("pending")
            await expect(page.get_by_role("status")).to_contain_text("Retried")
            await expect(page.get_by_role("button", name="Retry")).to_have_count(0)


async def test_a_run_page_follows_the_run_until_it_ends(tmp_path: Path) -> None:
    # Another operator pauses, then cancels, the run this page shows: the page follows
    # without a reload, then stops asking once the run has ended.
    with anyio.fail_after(BOUND):
        async with serving(tmp_path) as (base, ids), browsing() as page:
            await page.goto(f"{base}/runs/{ids.queued}")
            badge = page.locator(".page-head .badge")
            await expect(badge).to_have_text("pending")
            other = page.context.request
            assert (await other.post(f"{base}/api/runs/{ids.queued}/pause")).ok
            await expect(badge).to_have_text("paused", timeout=STEP)
            await expect(page.get_by_role("button", name="Resume")).to_be_visible()
            await expect(page.get_by_role("button", name="Pause", exact=True)).to_have_count(0)
            await expect(page.locator("#refresh-state")).to_contain_text("updated")
            assert (await other.post(f"{base}/api/runs/{ids.queued}/cancel")).ok
            await expect(badge).to_have_text("canceled", timeout=STEP)
            await expect(page.get_by_role("button", name="Retry")).to_be_visible()
            await expect(page.locator("#auto-refresh")).to_have_count(0)
