"""The HTTP surface under pressure: shutdown with requests in flight, requests for other
host names, oversized bodies, and bad input that used to answer 500.

Each test here failed before its fix: a drain cut the answer of a request in flight, a
cancelled server could leave its port open, any Host was served without a token (DNS
rebinding), bodies were read whole whatever their size, and text with a lone surrogate,
a huge delay or a very long name reached the store (and came back as a 500).
"""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from runtime.config import HttpAddress
from runtime.web.server import HttpServer


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


async def test_a_request_that_outlasts_the_grace_is_cut_and_the_server_stops() -> None:
    app = SlowApp()  # never released
    server = HttpServer(app, HttpAddress("127.0.0.1", 0), grace=0.2)
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
                server.drain()
                inner.cancel_scope.cancel()
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


async def test_a_cancelled_server_cuts_its_connections() -> None:
    # Cancelled (not drained), nothing is waited for: the request in flight is cut.
    app = SlowApp()
    server = HttpServer(app, HttpAddress("127.0.0.1", 0), grace=30)
    failures: list[Exception] = []
    with anyio.fail_after(5):
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
                inner.cancel_scope.cancel()
    assert len(failures) == 1 and server.stopped
