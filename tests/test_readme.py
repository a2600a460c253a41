"""The code shown in README.md and docs/ runs as shown.

Each ```python block of a page is executed in order, in one namespace (top-level
``await`` and ``async with`` allowed, as in an asyncio REPL), with the few names
the text says stand for the reader's own code: ``Inventory``, ``generate_report``,
``send_report_email``, ``today``.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime import RunStatus, Runtime
from runtime.testing import ManualClock
from tests.helpers.waiting import wait_status

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(page: str) -> list[tuple[int, str]]:
    """The ```python blocks of ``page`` (relative to the repository), with their first line."""
    text = (ROOT / page).read_text()
    return [
        (text[: match.start()].count("\n") + 2, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
    ]


async def run_blocks(page: str, namespace: dict[str, Any]) -> None:
    for line, source in python_blocks(page):
        # Line numbers in tracebacks point into the page.
        padded = "\n" * (line - 1) + source
        code = compile(padded, str(ROOT / page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        returned = eval(code, namespace)
        if inspect.iscoroutine(returned):
            await returned


class Inventory:
    """The reader's inventory service: 100 of each SKU."""

    def __init__(self) -> None:
        self.reserved: dict[str, int] = {}
        self.released: list[str] = []

    async def reserve(self, items: list[dict[str, Any]]) -> list[str]:
        for item in items:
            if self.reserved.get(item["sku"], 0) + item["quantity"] > 100:
                raise ValueError(f"out of stock: {item['sku']}")
        ids = []
        for item in items:
            self.reserved[item["sku"]] = self.reserved.get(item["sku"], 0) + item["quantity"]
            ids.append(f"res_{item['sku']}_{len(self.reserved)}")
        return ids

    async def release(self, ids: list[str]) -> None:
        for reservation in ids:  # a real service fails on None too
            self.released.append(reservation)


def reader_code() -> dict[str, Any]:
    return {
        "__name__": "readme",
        "Inventory": Inventory,
        "generate_report": lambda date: {"date": date, "rows": 3},
        "send_report_email": lambda report: None,
        "today": lambda: "2026-11-21",
    }


async def test_the_readme_runs_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its sqlite:///app.db
    printed: list[str] = []
    namespace = reader_code()
    namespace["print"] = lambda *values: printed.append(" ".join(map(str, values)))
    await run_blocks("README.md", namespace)

    # The failing path: the step that fails is the one whose compensation gets None.
    failed = namespace["failed"]
    assert failed.status is RunStatus.FAILED, failed.errors
    assert [(e.step, e.message) for e in failed.errors] == [
        ("reserve-inventory", "out of stock: tee")
    ]
    assert printed[:3] == [
        "completed 1",
        "failed out of stock: tee",
        "pending",
    ]
    assert printed[3].startswith("run_") and printed[3].endswith(" pending")
    assert printed[4:] == [
        "1 reserve-inventory compensated 3",
        "True None",
        "{'receipt': 'receipt for o1', 'pick': 'pick 1 items', 'review': None}",
        "{'currency': 'EUR'}",
        "['inventory', 'settings']",
    ]


async def test_the_readme_mounts_the_operator_surface_in_fastapi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # its sqlite:///app.db, and the project it loads
    namespace = reader_code()
    namespace["print"] = lambda *values: None
    await run_blocks("README.md", namespace)
    api = namespace["api"]
    transport = httpx.ASGITransport(app=api)
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        health = await client.get("/runtime/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        runs = (await client.get("/runtime/api/runs?status=completed")).json()["runs"]
        assert runs and all(r["status"] == "completed" for r in runs)
        missing = await client.get("/runtime/api/runs/run_nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "RunNotFoundError"


async def test_the_durable_page_example_runs(tmp_path: Path) -> None:
    namespace = reader_code()
    await run_blocks("docs/durable.md", namespace)
    report = namespace["daily_report"]
    clock = ManualClock()
    async with Runtime(f"sqlite:///{tmp_path / 'app.db'}", workflows=[report], clock=clock) as rt:
        handle = await rt.workflows.run(report, {"date": "2026-11-21"})
        await wait_status(rt, handle.run_id, RunStatus.SLEEPING)
        clock.advance(3600)
        assert await handle.result(timeout=10) == {"success": True}
        run = await rt.workflows.get_run(handle.run_id)
    assert [s.name for s in run.steps] == ["generate_report", "cool_down", "send_report"]
