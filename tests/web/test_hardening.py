"""The HTTP surface under pressure: shutdown with requests in flight, requests for other
host names, oversized bodies, and bad input that used to answer 500.

Each fix here has a test that failed before it: a drain followed by the task group's
cancellation cut the answer of a request in flight; a cancelled server left its
connections open and its socket registered with the loop (the next server on that
descriptor never answered); any Host was served without a token (DNS rebinding);
bodies were read whole whatever their size; and text with a lone surrogate, a huge
delay or a very long name reached the store (or answered 500).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from runtime.clock import SystemClock
from runtime.config import HttpAddress
from runtime.limits import MAX_TEXT
from runtime.store import open_store
from runtime.store.base import Store
from runtime.web.app import build_app, create_app, store_source
from runtime.web.auth import MAX_API_BODY, MAX_LOGIN_BODY
from runtime.web.console import Console
from runtime.web.project import Project
from runtime.web.server import HttpServer

TOKEN = "s3cret-token-for-tests"


class SlowApp:
    """An ASGI app whose answer waits until the test releases it."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.entered.set()
        await self.release.wait()
        body = b"the whole answer"
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# -- shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize("cancelled", [True, False], ids=["service", "dashboard"])
async def test_a_request_in_flight_gets_its_whole_answer_when_the_server_stops(
    cancelled: bool,
) -> None:
    # The service drains, then cancels its task group (and closes the store after it);
    # `runtime dashboard` drains and waits for the server to end. Either way a request
    # started before must still be answered, and the server end only after it.
    app = SlowApp()
    server = HttpServer(app, HttpAddress("127.0.0.1", 0), grace=10)
    answers: list[httpx.Response] = []
    stopped = anyio.Event()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer:

            async def service() -> None:
                async with anyio.create_task_group() as inner:
                    await inner.start(server.run)
                    outer.start_soon(request)
                    await app.entered.wait()
                    server.drain()
                    if cancelled:
                        inner.cancel_scope.cancel()
                stopped.set()

            async def request() -> None:
                async with httpx.AsyncClient() as client:
                    answers.append(await client.get(f"http://127.0.0.1:{server.port}/slow"))

            outer.start_soon(service)
            await app.entered.wait()
            await anyio.wait_all_tasks_blocked()
            assert not stopped.is_set()  # the service waits for the request...
            assert server.port is not None and _refused(server.port)  # ...taking no new one
            app.release.set()
    assert [(a.status_code, a.text) for a in answers] == [(200, "the whole answer")]
    assert stopped.is_set() and server.stopped


async def _stop_with_a_request_in_flight(
    server: HttpServer, app: SlowApp, *, drain: bool
) -> list[Exception]:
    """Serve, send one request the app never answers, stop the server (drained first,
    or only cancelled) and return how the request failed."""
    failures: list[Exception] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer:

            async def request() -> None:
                async with httpx.AsyncClient() as client:
                    try:
                        await client.get(f"http://127.0.0.1:{server.port}/slow")
                    except httpx.TransportError as exc:
                        failures.append(exc)

            async with anyio.create_task_group() as inner:
                await inner.start(server.run)
                outer.start_soon(request)
                await app.entered.wait()
                if drain:
                    server.drain()
                inner.cancel_scope.cancel()
    return failures


async def test_a_request_that_outlasts_the_grace_is_cut_and_the_server_stops() -> None:
    app = SlowApp()  # never released
    server = HttpServer(app, HttpAddress("127.0.0.1", 0), grace=0.2)
    failures = await _stop_with_a_request_in_flight(server, app, drain=True)
    assert len(failures) == 1 and server.stopped
    assert server.port is not None and _refused(server.port)


async def test_a_cancelled_server_leaves_no_listening_socket() -> None:
    server = HttpServer(SlowApp(), HttpAddress("127.0.0.1", 0))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            port = server.port
            assert port is not None and not _refused(port)
            tg.cancel_scope.cancel()  # not drained: cancelled
    assert server.stopped and _refused(port)
    # The loop forgot the socket too: a server started next (likely on the same file
    # descriptor) accepts and answers.
    app = SlowApp()
    app.release.set()
    following = HttpServer(app, HttpAddress("127.0.0.1", 0))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(following.run)
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{following.port}/")
            following.drain()
    assert answer.text == "the whole answer"


async def test_a_cancelled_server_cuts_its_connections(caplog: pytest.LogCaptureFixture) -> None:
    # Cancelled (not drained), nothing is waited for: the request in flight is cut.
    app = SlowApp()
    server = HttpServer(app, HttpAddress("127.0.0.1", 0), grace=30)
    with anyio.fail_after(5):
        failures = await _stop_with_a_request_in_flight(server, app, drain=False)
    assert len(failures) == 1 and server.stopped
    # Cut on purpose, not a crash: uvicorn's "Exception in ASGI application" with the
    # CancelledError's traceback is not logged (the server logs http_requests_cut).
    assert not [r for r in caplog.records if r.name == "uvicorn.error" and r.exc_info]


# -- the app over a real store -----------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'app.db'}", create=True)
    try:
        yield opened
    finally:
        await opened.close()


def _client(
    store: Store, *, token: str | None = None, host: str = "127.0.0.1:8000", **options: Any
) -> httpx.AsyncClient:
    console = Console(store_source(store), Project.unknown(), SystemClock())
    app = build_app(console, token=token, **options)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


def _error(answer: httpx.Response) -> tuple[int, str, str]:
    error = answer.json()["error"]
    return answer.status_code, error["type"], error["message"]


# -- DNS rebinding: without a token only loopback names are served ------------------------

LOOPBACK = [
    "localhost",
    "localhost:8000",
    "LOCALHOST:8000",
    "127.0.0.1",
    "127.0.0.1:8000",
    "127.1.2.3:9",
    "[::1]",
    "[::1]:8000",
]
FOREIGN = [
    "evil.example",
    "evil.example:8000",
    "localhost.evil.example:8000",
    "127.0.0.1.evil.example",
    "10.0.0.1:8000",
    "[::2]:8000",
    "[::ffff:8.8.8.8]:80",
    "0.0.0.0:8000",
    "",
]


@pytest.mark.parametrize("host", LOOPBACK)
async def test_without_a_token_loopback_names_are_served(store: Store, host: str) -> None:
    async with _client(store, host=host) as client:
        assert (await client.get("/api/runs", headers={"Host": host})).status_code == 200


@pytest.mark.parametrize("host", FOREIGN)
async def test_without_a_token_another_host_name_is_refused(store: Store, host: str) -> None:
    async with _client(store) as client:
        for method, path in (("GET", "/api/runs"), ("POST", "/api/events"), ("GET", "/")):
            answer = await client.request(method, path, headers={"Host": host}, json={})
            status, kind, message = _error(answer)
            assert (status, kind) == (403, "ForbiddenHost"), (method, path)
            assert f"Host {host!r}" in message and "loopback" in message
            assert "http_token" in message


async def test_without_a_host_header_a_request_is_refused(store: Store) -> None:
    console = Console(store_source(store), Project.unknown(), SystemClock())
    app = build_app(console, token=None)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/runs",
        "raw_path": b"/api/runs",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "http_version": "1.0",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 403
    assert json.loads(sent[1]["body"])["error"]["type"] == "ForbiddenHost"


async def test_with_a_token_any_host_name_is_served(store: Store) -> None:
    signed = {"Authorization": f"Bearer {TOKEN}", "Host": "runtime.example.com"}
    async with _client(store, token=TOKEN) as client:
        assert (await client.get("/api/runs", headers=signed)).status_code == 200
        # The token is still asked for: the name check does not replace it.
        unsigned = await client.get("/api/runs", headers={"Host": "runtime.example.com"})
        assert unsigned.status_code == 401


async def test_the_host_check_can_be_left_to_the_server_in_front(store: Store) -> None:
    async with _client(store, loopback_only=False) as client:
        answer = await client.get("/api/runs", headers={"Host": "ops.example.com"})
    assert answer.status_code == 200


@pytest.mark.parametrize(("loopback_only", "status"), [(True, 403), (False, 200)])
async def test_a_mounted_app_checks_the_name_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback_only: bool, status: int
) -> None:
    monkeypatch.delenv("RUNTIME_HTTP_TOKEN", raising=False)
    app = create_app(f"sqlite:///{tmp_path / 'app.db'}", project=None, loopback_only=loopback_only)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://ops.example.com") as client,
    ):
        assert (await client.get("/api/runs")).status_code == status
        local = await client.get("/api/runs", headers={"Host": "localhost:8000"})
        assert local.status_code == 200


async def test_a_rebinding_page_is_refused_by_the_real_server(store: Store) -> None:
    # Through uvicorn: the browser of a DNS rebinding attack sends the attacker's name.
    console = Console(store_source(store), Project.unknown(), SystemClock())
    server = HttpServer(build_app(console, token=None), HttpAddress("127.0.0.1", 0))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=base) as client:
                ours = await client.get("/api/health")
                theirs = await client.get("/api/health", headers={"Host": "evil.example:80"})
            server.drain()
    assert ours.status_code == 200
    assert theirs.status_code == 403 and theirs.json()["error"]["type"] == "ForbiddenHost"


# -- body caps ----------------------------------------------------------------------------


async def test_a_huge_sign_in_form_is_refused_unread(store: Store) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with _client(store, token=TOKEN) as client:
        huge = b"token=" + b"a" * MAX_LOGIN_BODY
        answer = await client.post("/login", content=huge, headers=form)
        assert _error(answer)[:2] == (413, "PayloadTooLarge")
        assert f"{MAX_LOGIN_BODY} bytes" in _error(answer)[2]

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to trust
            yield b"token="
            for _ in range(MAX_LOGIN_BODY // 1024 + 1):
                yield b"a" * 1024

        streamed = await client.post("/login", content=chunked(), headers=form)
        assert _error(streamed)[:2] == (413, "PayloadTooLarge")
        # A form of a sane size is read as before.
        sane = await client.post("/login", content=f"token={TOKEN}&next=/", headers=form)
        assert sane.status_code == 303


async def test_a_huge_api_body_is_refused_with_413(store: Store) -> None:
    async with _client(store) as client:
        data = "x" * MAX_API_BODY
        answer = await client.post("/api/events", json={"name": "a.b", "data": data})
        status, kind, message = _error(answer)
        assert (status, kind) == (413, "PayloadTooLarge")
        assert f"at most {MAX_API_BODY} bytes" in message

        async def chunked() -> AsyncIterator[bytes]:
            yield b'{"name": "a.b", "data": "'
            for _ in range(MAX_API_BODY // 65536 + 1):
                yield b"x" * 65536
            yield b'"}'

        streamed = await client.post("/api/events", content=chunked())
        assert _error(streamed)[:2] == (413, "PayloadTooLarge")
        listed = (await client.get("/api/events")).json()["events"]
        assert listed == []  # nothing was stored
        fits = await client.post("/api/events", json={"name": "a.b", "data": "x" * 1000})
        assert fits.status_code == 202


async def test_a_false_content_length_is_refused(store: Store) -> None:
    async with _client(store) as client:
        headers = {"Content-Length": "not a number", "Content-Type": "application/json"}
        answer = await client.post("/api/events", content=b"{}", headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "BadRequest"


# -- text that is not Unicode (lone surrogates) -----------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/events", '{"name": "a.b", "data": "\\ud800"}'),
        ("/api/events", '{"name": "a.b", "data": {"\\udfff": 1}}'),
        ("/api/events", '{"name": "a.b", "data": 1, "metadata": {"k": ["\\ud800x"]}}'),
        ("/api/workflows/w/runs", '{"input": {"text": "\\ud83d"}}'),
    ],
)
async def test_a_lone_surrogate_is_refused_and_listings_stay_readable(
    store: Store, path: str, body: str
) -> None:
    async with _client(store) as client:
        answer = await client.post(path, content=body)
        status, kind, message = _error(answer)
        assert (status, kind) == (400, "SerializationError")
        assert "surrogate" in message
        assert (await client.get("/api/events")).status_code == 200
        assert (await client.get("/api/runs")).json()["runs"] == []
        assert (await client.get("/events")).status_code == 200
        # A real character outside the BMP (a surrogate pair in JSON) is fine.
        emoji = await client.post("/api/events", content='{"name":"a.b","data":"\\ud83d\\ude00"}')
        assert emoji.status_code == 202
        shown = (await client.get("/api/events")).json()["events"][0]
        assert shown["data"] == "\N{GRINNING FACE}"


# -- delays out of range ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "needle"),
    [
        ("1e300", "at most"),
        ("100000000000000000000", "at most"),
        ("1e400", "finite"),
        ("-1", ">= 0 seconds, got -1"),
        ("-1e300", ">= 0"),
        ('"5"', "number of seconds"),
        ("true", "number of seconds"),
        ("[1]", "number of seconds"),
        ("{}", "number of seconds"),
    ],
)
async def test_a_bad_delay_answers_400_saying_why(store: Store, delay: str, needle: str) -> None:
    async with _client(store) as client:
        answer = await client.post(
            "/api/events", content=f'{{"name":"a.b","data":1,"delay":{delay}}}'
        )
        status, _, message = _error(answer)
        assert status == 400 and "delay" in message and needle in message, message
        assert (await client.get("/api/events")).json()["events"] == []


async def test_a_delay_in_range_is_kept(store: Store) -> None:
    async with _client(store) as client:
        answer = await client.post("/api/events", json={"name": "a.b", "data": 1, "delay": 60})
        assert answer.status_code == 202
        event = (await client.get("/api/events")).json()["events"][0]
    assert event["available_at"] > event["occurred_at"]


# -- names past the limit ----------------------------------------------------------------

LONG = "x" * (MAX_TEXT + 1)


@pytest.mark.parametrize(
    ("method", "path", "body", "what"),
    [
        ("POST", "/api/events", {"name": f"a.{LONG}", "data": 1}, "name"),
        ("POST", "/api/events", {"name": "a.b", "data": 1, "idempotency_key": LONG}, "key"),
        ("POST", f"/api/workflows/{LONG}/runs", {"input": 1}, "workflow"),
        ("POST", "/api/workflows/w/runs", {"input": 1, "idempotency_key": LONG}, "key"),
        ("POST", "/api/workflows/w/runs", {"input": 1, "version": LONG}, "version"),
        ("GET", f"/api/runs?workflow={LONG}", None, "workflow"),
        ("GET", f"/api/events?name={LONG}", None, "name"),
        ("GET", f"/api/deliveries?subscriber_id={LONG}", None, "subscriber_id"),
        ("GET", f"/api/runs?cursor={LONG}", None, "cursor"),
        ("GET", f"/api/runs/{LONG}", None, "run_id"),
        ("POST", f"/api/runs/{LONG}/cancel", None, "run_id"),
        ("POST", f"/api/deliveries/{LONG}/redrive", None, "delivery_id"),
    ],
)
async def test_a_name_past_the_limit_answers_400(
    store: Store, method: str, path: str, body: Any, what: str
) -> None:
    async with _client(store) as client:
        answer = await client.request(method, path, json=body)
        status, _, message = _error(answer)
    assert status == 400, answer.text
    assert what in message and f"at most {MAX_TEXT} characters" in message
    assert LONG not in message  # the message shows a cut, not the whole name


async def test_a_name_at_the_limit_is_accepted(store: Store) -> None:
    key = "k" * MAX_TEXT
    async with _client(store) as client:
        answer = await client.post(
            "/api/workflows/w/runs", json={"input": 1, "idempotency_key": key}
        )
    assert answer.status_code == 202


# -- numbers in other digits ------------------------------------------------------------


@pytest.mark.parametrize("limit", ["\u0663", "\uff15", "1_0", " 5", "+5"])
async def test_a_limit_in_other_digits_is_refused(store: Store, limit: str) -> None:
    async with _client(store) as client:
        answer = await client.get("/api/runs", params={"limit": limit})
    status, _, message = _error(answer)
    assert status == 400 and "limit must be a whole number" in message
