"""Driving Debian's chromium with Playwright: where it is, its flags, and a page to drive.

The browser comes from apt (``/usr/bin/chromium``); ``playwright install`` is never run.
Without it a browser test fails under CI (``CI`` set) and is skipped locally, saying why.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    """Fail under CI, skip locally, when chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = f"the dashboard's browser tests need chromium at {CHROMIUM} (apt install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless chromium, closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()
