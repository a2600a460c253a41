"""The API when something fails underneath: a database it cannot reach answers 503, a bug
answers 500 as JSON and is logged whole; neither leaks a traceback to the caller."""

from __future__ import annotations

import httpx
import structlog

from runtime.clock import SystemClock
from runtime.errors import StoreOperationError
from runtime.store.base import Store
from runtime.web.app import build_app
from runtime.web.console import Console
from runtime.web.project import Project


def _app(failure: Exception) -> httpx.AsyncClient:
    async def store() -> Store:
        raise failure

    app = build_app(Console(store, Project.unknown(), SystemClock()), token=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def test_a_database_that_cannot_be_reached_answers_503() -> None:
    down = StoreOperationError("list_runs", "postgresql://app:***@db/app", "connection refused")
    async with _app(down) as client:
        answer = await client.get("/api/runs")
    assert answer.status_code == 503
    assert answer.json() == {"error": {"type": "StoreOperationError", "message": str(down)}}


async def test_a_bug_answers_500_as_json_and_is_logged_with_its_traceback() -> None:
    with structlog.testing.capture_logs() as logs:
        async with _app(RuntimeError("boom")) as client:
            answer = await client.get("/api/jobs")
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "InternalError"
    assert "boom" not in answer.text and "Traceback" not in answer.text
    failed = [e for e in logs if e["event"] == "api_failed"]
    assert failed and failed[0]["path"] == "/api/jobs" and failed[0]["exc_info"]


async def test_a_bug_under_a_page_answers_a_500_page_and_is_logged() -> None:
    with structlog.testing.capture_logs() as logs:
        async with _app(RuntimeError("boom")) as client:
            answer = await client.get("/jobs", headers={"Accept": "text/html"})
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert "Server error" in answer.text
    assert "boom" not in answer.text and "Traceback" not in answer.text
    failed = [e for e in logs if e["event"] == "page_failed"]
    assert failed and failed[0]["path"] == "/jobs" and failed[0]["exc_info"]


async def test_an_unknown_page_is_an_html_404_and_an_unknown_api_path_is_json() -> None:
    async with _app(RuntimeError("unused")) as client:
        page = await client.get("/no/such/page", headers={"Accept": "text/html"})
        api = await client.get("/api/nothing", headers={"Accept": "text/html"})
        plain = await client.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page." in page.text
    assert api.status_code == 404
    assert api.json()["error"]["type"] == "NotFound"
    assert plain.status_code == 404
    assert plain.json()["error"] == {"type": "NotFound", "message": "no such path: /no/such/page"}
